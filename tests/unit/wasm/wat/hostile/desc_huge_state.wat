;; desc_huge_state.wat - the descriptor claims a state of
;; 1,000,000 values (8 MB per buffer), more than a small memory cap holds;
;; tw_alloc grows memory as needed and returns 0 when memory.grow fails, like
;; a C malloc.
;; Expected (4 MiB cap): TW_ELIMIT "memory limit" from tw_alloc(8000000).
(module
  (memory (export "memory") 1)
  (func (export "tw_abi_version") (result i32) (i32.const 1))
  (data (i32.const 1024) "{\"abi\":1,\"name\":\"desc_huge_state\",\"state\":[{\"name\":\"x\",\"size\":1000000}],\"inputs\":[],\"outputs\":[{\"name\":\"y\",\"unit\":\"m\",\"size\":1}],\"params\":[]}")
  (func (export "tw_describe") (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 141)))
  (global $brk (mut i32) (i32.const 8192))
  ;; A bump allocator that grows memory as needed; 0 when it cannot.
  (func (export "tw_alloc") (param $n i32) (result i32)
    (local $p i32) (local $end i32) (local $need i32)
    (local.set $p (global.get $brk))
    (local.set $end (i32.and (i32.add (i32.add (local.get $p) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (local.set $need (i32.sub (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
                              (memory.size)))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then (if (i32.eq (memory.grow (local.get $need)) (i32.const -1))
              (then (return (i32.const 0))))))
    (global.set $brk (local.get $end))
    (local.get $p))
  (func (export "tw_init") (param $th i32) (param $xo i32) (result i32)
    (f64.store (local.get $xo) (f64.const 0.25))
    (i32.const 0))
  (func (export "tw_step") (param $t f64) (param $dt f64) (param $x i32) (param $u i32)
        (param $th i32) (param $xo i32) (param $y i32) (result i32)
    ;; x_next = x + dt, y = x
    (f64.store (local.get $y) (f64.load (local.get $x)))
    (f64.store (local.get $xo) (f64.add (f64.load (local.get $x)) (local.get $dt)))
    (i32.const 0))
)
