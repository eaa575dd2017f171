# Warnings are errors everywhere in Twin's own code.
add_compile_options(-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
                    -Wmissing-prototypes -Wformat=2 -Wvla -Wpointer-arith
                    -Wcast-qual -Wno-unused-parameter)
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  add_compile_options(-Wlogical-op -Wduplicated-cond)
endif()
