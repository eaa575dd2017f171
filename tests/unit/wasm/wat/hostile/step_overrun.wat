;; step_overrun.wat - the descriptor claims 1 state value and 1
;; output, but tw_step writes 4096 values from x_next on, over its other
;; buffers and its own data.
;; Expected: steps return TW_OK; the host reads its 1 value and nothing of
;; the host is touched.
(module
  (memory (export "memory") 1 16)
  (func (export "tw_abi_version") (result i32) (i32.const 1))
  (data (i32.const 1024) "{\"abi\":1,\"name\":\"step_overrun\",\"state\":[{\"name\":\"x\",\"unit\":\"m\",\"size\":1}],\"inputs\":[],\"outputs\":[{\"name\":\"y\",\"unit\":\"m\",\"size\":1}],\"params\":[]}")
  (func (export "tw_describe") (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 143)))
  (global $brk (mut i32) (i32.const 8192))
  ;; A bump allocator: 8-byte aligned, never frees.
  (func (export "tw_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $brk))
    (global.set $brk (i32.and (i32.add (i32.add (global.get $brk) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (local.get $p))
  (func (export "tw_init") (param $th i32) (param $xo i32) (result i32)
    (f64.store (local.get $xo) (f64.const 0.25))
    (i32.const 0))
  (func (export "tw_step") (param $t f64) (param $dt f64) (param $x i32) (param $u i32)
        (param $th i32) (param $xo i32) (param $y i32) (result i32)
    (local $i i32)
    (loop $w
      (f64.store (i32.add (local.get $xo) (i32.shl (local.get $i) (i32.const 3))) (f64.const 7))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $w (i32.lt_u (local.get $i) (i32.const 4096))))
    (i32.const 0))
)
