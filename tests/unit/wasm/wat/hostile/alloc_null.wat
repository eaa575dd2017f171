;; alloc_null.wat - tw_alloc returns 0 (allocation failure)
;; while memory is far from the cap.
;; Expected: TW_ETRAP "tw_alloc(8) failed".
(module
  (memory (export "memory") 1 16)
  (func (export "tw_abi_version") (result i32) (i32.const 1))
  (data (i32.const 1024) "{\"abi\":1,\"name\":\"alloc_null\",\"state\":[{\"name\":\"x\",\"unit\":\"m\",\"size\":1}],\"inputs\":[],\"outputs\":[{\"name\":\"y\",\"unit\":\"m\",\"size\":1}],\"params\":[]}")
  (func (export "tw_describe") (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 141)))
  (func (export "tw_alloc") (param i32) (result i32) (i32.const 0))
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
