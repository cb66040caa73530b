// The unifaas hostcalls (wasm import module "unifaas"): the function's key-value store.
// Outside the platform (`unifaas run`) every call answers STATUS_UNAVAILABLE.

@external("unifaas", "kv_get")
declare function kv_get(key: usize, keyLen: u32, out: usize, cap: u32, outLen: usize): i32;
@external("unifaas", "kv_set")
declare function kv_set(key: usize, keyLen: u32, value: usize, valueLen: u32): i32;
@external("unifaas", "kv_delete")
declare function kv_delete(key: usize, keyLen: u32): i32;
@external("unifaas", "kv_incr")
declare function kv_incr(key: usize, keyLen: u32, delta: i64, result: usize): i32;

export const STATUS_OK = 0;
export const STATUS_NOT_FOUND = 1;
export const STATUS_BUFFER_TOO_SMALL = 2;
export const STATUS_UNAVAILABLE = 13;

/** The status of the last call here (STATUS_OK when it worked). */
export let lastStatus: i32 = STATUS_OK;

/** The value of key, or null (lastStatus says why). */
export function get(key: string): ArrayBuffer | null {
  const k = String.UTF8.encode(key);
  let buf = new ArrayBuffer(256);
  const len = new ArrayBuffer(4);
  for (;;) {
    lastStatus = kv_get(changetype<usize>(k), k.byteLength, changetype<usize>(buf),
      buf.byteLength, changetype<usize>(len));
    const n = load<u32>(changetype<usize>(len));
    if (lastStatus == STATUS_BUFFER_TOO_SMALL) {
      buf = new ArrayBuffer(n);
      continue;
    }
    return lastStatus == STATUS_OK ? buf.slice(0, n) : null;
  }
}

export function set(key: string, value: ArrayBuffer): bool {
  const k = String.UTF8.encode(key);
  lastStatus = kv_set(changetype<usize>(k), k.byteLength, changetype<usize>(value),
    value.byteLength);
  return lastStatus == STATUS_OK;
}

export function remove(key: string): bool {
  const k = String.UTF8.encode(key);
  lastStatus = kv_delete(changetype<usize>(k), k.byteLength);
  return lastStatus == STATUS_OK;
}

/** Adds delta to the decimal integer at key (a missing key counts from 0); -1 and
 * lastStatus on failure. */
export function incr(key: string, delta: i64): i64 {
  const k = String.UTF8.encode(key);
  const result = new ArrayBuffer(8);
  lastStatus = kv_incr(changetype<usize>(k), k.byteLength, delta, changetype<usize>(result));
  return lastStatus == STATUS_OK ? load<i64>(changetype<usize>(result)) : -1;
}
