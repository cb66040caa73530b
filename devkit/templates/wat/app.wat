;; __NAME__: a unifaas function in WebAssembly text (raw ABI: the request body is stdin,
;; stdout is the response body). It reads the whole body and answers JSON with its size.
(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; 0: an iovec (pointer, length); 8: bytes read; 16: the 4 KiB read buffer
  ;; 8192: the answer, built here
  (data (i32.const 8192) "{\"function\": \"__NAME__\", \"language\": \"wat\", \"received_bytes\": \00")

  (func $digits (param $n i32) (param $at i32) (result i32)
    ;; writes $n in decimal at $at; returns the address after it
    (local $len i32) (local $m i32)
    (local.set $m (local.get $n))
    (loop $count
      (local.set $len (i32.add (local.get $len) (i32.const 1)))
      (local.set $m (i32.div_u (local.get $m) (i32.const 10)))
      (br_if $count (local.get $m)))
    (local.set $m (i32.add (local.get $at) (local.get $len)))
    (loop $put
      (local.set $m (i32.sub (local.get $m) (i32.const 1)))
      (i32.store8 (local.get $m) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $put (i32.gt_u (local.get $m) (local.get $at))))
    (i32.add (local.get $at) (local.get $len)))

  (func (export "_start")
    (local $total i32) (local $end i32)
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 4096))
    (block $eof
      (loop $more
        (br_if $eof (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $eof (i32.eqz (i32.load (i32.const 8))))
        (local.set $total (i32.add (local.get $total) (i32.load (i32.const 8))))
        (br $more)))
    ;; the answer's prefix ends at its NUL
    (local.set $end (i32.const 8192))
    (loop $find
      (if (i32.load8_u (local.get $end))
        (then (local.set $end (i32.add (local.get $end) (i32.const 1))) (br $find))))
    (local.set $end (call $digits (local.get $total) (local.get $end)))
    (i32.store16 (local.get $end) (i32.const 0x0a7d))  ;; "}\n"
    (i32.store (i32.const 0) (i32.const 8192))
    (i32.store (i32.const 4) (i32.sub (i32.add (local.get $end) (i32.const 2)) (i32.const 8192)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
