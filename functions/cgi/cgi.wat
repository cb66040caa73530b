;; cgi: a WAGI test function. Prints CGI headers (Content-Type, Status: 201), a blank
;; line, then every environment entry and every argv entry, one per line.
(module
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get"
    (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get"
    (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; 0: iovec; 8: nwritten; 16: count; 20: buffer size; 64..: header text;
  ;; the pointer array and the strings are placed at the end of memory, which
  ;; is grown to fit.
  (data (i32.const 64) "Content-Type: text/plain\nStatus: 201 Created\n\n") ;; 46

  (func $write_all (param $ptr i32) (param $len i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $len)))
        (i32.store (i32.const 0) (local.get $ptr))
        (i32.store (i32.const 4) (local.get $len))
        (br_if $done (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $ptr (i32.add (local.get $ptr) (i32.load (i32.const 8))))
        (local.set $len (i32.sub (local.get $len) (i32.load (i32.const 8))))
        (br $more))))

  ;; Makes room for $bytes at the end of memory; returns its address.
  (func $alloc (param $bytes i32) (result i32)
    (local $base i32)
    (local.set $base (i32.shl (memory.size) (i32.const 16)))
    (if (i32.eq (memory.grow (i32.add (i32.shr_u (local.get $bytes) (i32.const 16)) (i32.const 1)))
                (i32.const -1))
      (then (unreachable)))
    (local.get $base))

  ;; Writes a block of NUL-terminated strings as lines.
  (func $print_lines (param $buf i32) (param $len i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (if (i32.eqz (i32.load8_u (i32.add (local.get $buf) (local.get $i))))
          (then (i32.store8 (i32.add (local.get $buf) (local.get $i)) (i32.const 10))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $write_all (local.get $buf) (local.get $len)))

  (func (export "_start")
    (local $ptrs i32) (local $buf i32)
    (call $write_all (i32.const 64) (i32.const 46))
    (drop (call $environ_sizes_get (i32.const 16) (i32.const 20)))
    (local.set $ptrs (call $alloc (i32.shl (i32.load (i32.const 16)) (i32.const 2))))
    (local.set $buf (call $alloc (i32.load (i32.const 20))))
    (drop (call $environ_get (local.get $ptrs) (local.get $buf)))
    (call $print_lines (local.get $buf) (i32.load (i32.const 20)))
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (local.set $ptrs (call $alloc (i32.shl (i32.load (i32.const 16)) (i32.const 2))))
    (local.set $buf (call $alloc (i32.load (i32.const 20))))
    (drop (call $args_get (local.get $ptrs) (local.get $buf)))
    (call $print_lines (local.get $buf) (i32.load (i32.const 20)))))
