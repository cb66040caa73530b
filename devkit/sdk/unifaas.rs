//! The unifaas hostcalls (wasm import module "unifaas"): the function's key-value store and
//! outbound HTTP through the host's allow-list. Outside the platform (`unifaas run`) every
//! call answers `Status::UNAVAILABLE`.
#![allow(dead_code)]

#[link(wasm_import_module = "unifaas")]
extern "C" {
    fn kv_get(key: *const u8, key_len: u32, out: *mut u8, cap: u32, out_len: *mut u32) -> i32;
    fn kv_set(key: *const u8, key_len: u32, value: *const u8, value_len: u32) -> i32;
    fn kv_delete(key: *const u8, key_len: u32) -> i32;
    fn kv_incr(key: *const u8, key_len: u32, delta: i64, result: *mut i64) -> i32;
    fn http_request(
        method: *const u8, method_len: u32, url: *const u8, url_len: u32,
        headers: *const u8, headers_len: u32, body: *const u8, body_len: u32, handle: *mut u32,
    ) -> i32;
    fn http_status(handle: u32, status: *mut u32) -> i32;
    fn http_body(handle: u32, out: *mut u8, cap: u32, out_len: *mut u32) -> i32;
}

/// A hostcall's status (see `name` for its meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub i32);

impl Status {
    pub const OK: Status = Status(0);
    pub const NOT_FOUND: Status = Status(1);
    pub const BUFFER_TOO_SMALL: Status = Status(2);
    pub const UNAVAILABLE: Status = Status(13);

    pub fn name(self) -> &'static str {
        const NAMES: [&str; 16] = [
            "ok", "not_found", "buffer_too_small", "invalid_argument", "key_too_large",
            "value_too_large", "quota_keys", "quota_bytes", "host_denied", "http_timeout",
            "http_too_large", "http_failed", "limit", "unavailable", "bad_handle", "not_a_number",
        ];
        NAMES.get(self.0 as usize).copied().unwrap_or("unknown")
    }
}

fn check(status: i32) -> Result<(), Status> {
    if status == 0 { Ok(()) } else { Err(Status(status)) }
}

/// Calls `fetch(buffer, cap, &mut len)` with a buffer that grows until the answer fits.
fn fetch(mut call: impl FnMut(*mut u8, u32, *mut u32) -> i32) -> Result<Vec<u8>, Status> {
    let mut buf = vec![0u8; 256];
    loop {
        let mut len = 0u32;
        let status = call(buf.as_mut_ptr(), buf.len() as u32, &mut len);
        if status == Status::BUFFER_TOO_SMALL.0 {
            buf.resize(len as usize, 0);
            continue;
        }
        check(status)?;
        buf.truncate(len as usize);
        return Ok(buf);
    }
}

/// The value of `key`, or None when there is none.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, Status> {
    match fetch(|out, cap, len| unsafe { kv_get(key.as_ptr(), key.len() as u32, out, cap, len) }) {
        Ok(value) => Ok(Some(value)),
        Err(Status::NOT_FOUND) => Ok(None),
        Err(status) => Err(status),
    }
}

pub fn set(key: &str, value: &[u8]) -> Result<(), Status> {
    check(unsafe { kv_set(key.as_ptr(), key.len() as u32, value.as_ptr(), value.len() as u32) })
}

pub fn delete(key: &str) -> Result<(), Status> {
    check(unsafe { kv_delete(key.as_ptr(), key.len() as u32) })
}

/// Adds `delta` to the decimal integer at `key` (a missing key counts from 0): the new value.
pub fn incr(key: &str, delta: i64) -> Result<i64, Status> {
    let mut result = 0i64;
    check(unsafe { kv_incr(key.as_ptr(), key.len() as u32, delta, &mut result) })?;
    Ok(result)
}

/// GET `url` through the host (deploy with an allow_hosts entry for it): status and body.
pub fn http_get(url: &str) -> Result<(u32, Vec<u8>), Status> {
    let (method, none) = ("GET", [0u8; 0]);
    let mut handle = 0u32;
    check(unsafe {
        http_request(
            method.as_ptr(), 3, url.as_ptr(), url.len() as u32,
            none.as_ptr(), 0, none.as_ptr(), 0, &mut handle,
        )
    })?;
    let mut status = 0u32;
    check(unsafe { http_status(handle, &mut status) })?;
    let body = fetch(|out, cap, len| unsafe { http_body(handle, out, cap, len) })?;
    Ok((status, body))
}
