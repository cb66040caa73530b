;; misbehave: a function that breaks the rules on purpose, chosen by argv[1]:
;;   loop          spin forever (wall-clock timeout, fuel)
;;   oom           memory.grow 1 MiB at a time until it fails, then trap (unreachable)
;;   trap          hit `unreachable` at once
;;   spam          write to stdout forever (output cap)
;;   exit N        exit with code N (decimal)
;;   stderr        write a line to stderr, exit 3
;; anything else (or nothing): usage on stderr, exit 2.
(module
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get"
    (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; 0: iovec; 8: nwritten; 16: argc; 20: argv buf size;
  ;; 256..: literals; 1024..: argv pointers (64 max); 2048..: argv strings
  (data (i32.const 256) "loop")
  (data (i32.const 264) "oom")
  (data (i32.const 272) "trap")
  (data (i32.const 280) "spam")
  (data (i32.const 288) "exit")
  (data (i32.const 296) "stderr")
  (data (i32.const 320) "spam spam spam spam spam spam spam spam spam spam spam spam spam!\n") ;; 66
  (data (i32.const 400) "misbehave: something went wrong\n") ;; 32
  (data (i32.const 448) "usage: misbehave loop|oom|trap|spam|exit N|stderr\n") ;; 50

  (func $write (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))

  (func $usage
    (drop (call $write (i32.const 2) (i32.const 448) (i32.const 50)))
    (call $proc_exit (i32.const 2)))

  ;; Pointer to argv[i], or 0 when there is no such argument.
  (func $arg (param $i i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $i) (i32.load (i32.const 16)))
      (then (i32.load (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 2)))))
      (else (i32.const 0))))

  ;; 1 when the NUL-terminated string at $s equals the $len bytes at $lit.
  (func $eq (param $s i32) (param $lit i32) (param $len i32) (result i32)
    (local $i i32)
    (if (i32.eqz (local.get $s)) (then (return (i32.const 0))))
    (block $differs
      (loop $next
        (if (i32.eq (local.get $i) (local.get $len))
          (then (return (i32.eqz (i32.load8_u (i32.add (local.get $s) (local.get $i)))))))
        (br_if $differs
          (i32.ne (i32.load8_u (i32.add (local.get $s) (local.get $i)))
                  (i32.load8_u (i32.add (local.get $lit) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  ;; Decimal string -> i32; usage exit on anything but digits.
  (func $parse (param $s i32) (result i32)
    (local $n i32) (local $c i32)
    (if (i32.eqz (local.get $s)) (then (call $usage)))
    (if (i32.eqz (i32.load8_u (local.get $s))) (then (call $usage)))
    (block $end
      (loop $next
        (local.set $c (i32.load8_u (local.get $s)))
        (br_if $end (i32.eqz (local.get $c)))
        (if (i32.gt_u (i32.sub (local.get $c) (i32.const 48)) (i32.const 9)) (then (call $usage)))
        (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10))
                               (i32.sub (local.get $c) (i32.const 48))))
        (local.set $s (i32.add (local.get $s) (i32.const 1)))
        (br $next)))
    (local.get $n))

  (func (export "_start")
    (local $cmd i32)
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (if (i32.gt_u (i32.load (i32.const 16)) (i32.const 64)) (then (call $usage)))
    (if (i32.gt_u (i32.load (i32.const 20)) (i32.const 61440)) (then (call $usage)))
    (drop (call $args_get (i32.const 1024) (i32.const 2048)))
    (local.set $cmd (call $arg (i32.const 1)))

    (if (call $eq (local.get $cmd) (i32.const 256) (i32.const 4))
      (then (loop $forever (br $forever))))
    (if (call $eq (local.get $cmd) (i32.const 264) (i32.const 3))
      (then
        (loop $grow
          (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
        (unreachable)))
    (if (call $eq (local.get $cmd) (i32.const 272) (i32.const 4))
      (then (unreachable)))
    (if (call $eq (local.get $cmd) (i32.const 280) (i32.const 4))
      (then
        (loop $again
          (drop (call $write (i32.const 1) (i32.const 320) (i32.const 66)))
          (br $again))))
    (if (call $eq (local.get $cmd) (i32.const 288) (i32.const 4))
      (then (call $proc_exit (call $parse (call $arg (i32.const 2))))))
    (if (call $eq (local.get $cmd) (i32.const 296) (i32.const 6))
      (then
        (drop (call $write (i32.const 2) (i32.const 400) (i32.const 32)))
        (call $proc_exit (i32.const 3))))
    (call $usage)))
