;; files: reads data.txt from the preopened files bundle ("/" is fd 3) and copies
;; it to stdout, then creates or appends to scratch.txt with "written\n" and prints
;; "scratch.txt existed: yes|no". A fresh copy of the bundle per call means "no"
;; every time. Exits 1 (message on stderr) when data.txt cannot be opened.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 2)
  ;; 0: iovec; 8: nread/nwritten; 12: opened fd; 64..: literals; 65536..: buffer
  (data (i32.const 64) "data.txt")                 ;; 8
  (data (i32.const 80) "scratch.txt")              ;; 11
  (data (i32.const 96) "written\n")                ;; 8
  (data (i32.const 112) "scratch.txt existed: no\n") ;; 24
  (data (i32.const 144) "scratch.txt existed: yes\n") ;; 25
  (data (i32.const 176) "files: cannot open data.txt\n") ;; 28
  (data (i32.const 208) "files: cannot write scratch.txt\n") ;; 32
  (global $ROOT i32 (i32.const 3))
  (global $RIGHTS i64 (i64.const 0x1fffffff))
  (global $ERRNO_EXIST i32 (i32.const 20))

  (func $write_all (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (local $err i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $len)))
        (i32.store (i32.const 0) (local.get $ptr))
        (i32.store (i32.const 4) (local.get $len))
        (local.set $err (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $done (local.get $err))
        (local.set $ptr (i32.add (local.get $ptr) (i32.load (i32.const 8))))
        (local.set $len (i32.sub (local.get $len) (i32.load (i32.const 8))))
        (br $more)))
    (local.get $err))

  (func $fail (param $ptr i32) (param $len i32)
    (drop (call $write_all (i32.const 2) (local.get $ptr) (local.get $len)))
    (call $proc_exit (i32.const 1)))

  ;; path_open relative to the bundle root; returns the errno, fd at address 12.
  (func $open (param $path i32) (param $len i32) (param $oflags i32) (param $fdflags i32)
    (result i32)
    (call $path_open (global.get $ROOT) (i32.const 0) (local.get $path) (local.get $len)
      (local.get $oflags) (global.get $RIGHTS) (global.get $RIGHTS) (local.get $fdflags)
      (i32.const 12)))

  (func (export "_start")
    (local $fd i32) (local $n i32) (local $err i32)
    ;; copy data.txt to stdout
    (if (call $open (i32.const 64) (i32.const 8) (i32.const 0) (i32.const 0))
      (then (call $fail (i32.const 176) (i32.const 28))))
    (local.set $fd (i32.load (i32.const 12)))
    (block $eof
      (loop $more
        (i32.store (i32.const 0) (i32.const 65536))
        (i32.store (i32.const 4) (i32.const 65536))
        (if (call $fd_read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))
          (then (call $fail (i32.const 176) (i32.const 28))))
        (local.set $n (i32.load (i32.const 8)))
        (br_if $eof (i32.eqz (local.get $n)))
        (drop (call $write_all (i32.const 1) (i32.const 65536) (local.get $n)))
        (br $more)))
    (drop (call $fd_close (local.get $fd)))
    ;; scratch.txt: O_CREAT|O_EXCL (1|4) tells us whether it was already there
    (local.set $err (call $open (i32.const 80) (i32.const 11) (i32.const 5) (i32.const 0)))
    (if (i32.eq (local.get $err) (global.get $ERRNO_EXIST))
      (then
        ;; O_CREAT, fdflags APPEND (1)
        (local.set $err (call $open (i32.const 80) (i32.const 11) (i32.const 1) (i32.const 1)))
        (if (local.get $err) (then (call $fail (i32.const 208) (i32.const 32))))
        (drop (call $write_all (i32.const 1) (i32.const 144) (i32.const 25))))
      (else
        (if (local.get $err) (then (call $fail (i32.const 208) (i32.const 32))))
        (drop (call $write_all (i32.const 1) (i32.const 112) (i32.const 24)))))
    (local.set $fd (i32.load (i32.const 12)))
    (if (call $write_all (local.get $fd) (i32.const 96) (i32.const 8))
      (then (call $fail (i32.const 208) (i32.const 32))))
    (drop (call $fd_close (local.get $fd)))))
