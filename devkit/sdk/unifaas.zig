//! The unifaas hostcalls (wasm import module "unifaas"): the function's key-value store.
//! Outside the platform (`unifaas run`) every call answers `error.Unavailable`.
const std = @import("std");

extern "unifaas" fn kv_get(key: [*]const u8, key_len: u32, out: [*]u8, cap: u32, out_len: *u32) i32;
extern "unifaas" fn kv_set(key: [*]const u8, key_len: u32, value: [*]const u8, value_len: u32) i32;
extern "unifaas" fn kv_delete(key: [*]const u8, key_len: u32) i32;
extern "unifaas" fn kv_incr(key: [*]const u8, key_len: u32, delta: i64, result: *i64) i32;

pub const Error = error{ NotFound, Unavailable, Refused };

fn check(status: i32) Error!void {
    return switch (status) {
        0 => {},
        1 => error.NotFound,
        13 => error.Unavailable,
        else => error.Refused,
    };
}

/// The value of `key`, allocated with `gpa` (error.NotFound when it has none).
pub fn get(gpa: std.mem.Allocator, key: []const u8) (Error || std.mem.Allocator.Error)![]u8 {
    var buf = try gpa.alloc(u8, 256);
    while (true) {
        var len: u32 = 0;
        const status = kv_get(key.ptr, @intCast(key.len), buf.ptr, @intCast(buf.len), &len);
        if (status == 2) {
            buf = try gpa.realloc(buf, len);
            continue;
        }
        check(status) catch |err| {
            gpa.free(buf);
            return err;
        };
        return buf[0..len];
    }
}

pub fn set(key: []const u8, value: []const u8) Error!void {
    return check(kv_set(key.ptr, @intCast(key.len), value.ptr, @intCast(value.len)));
}

pub fn delete(key: []const u8) Error!void {
    return check(kv_delete(key.ptr, @intCast(key.len)));
}

/// Adds `delta` to the decimal integer at `key` (a missing key counts from 0).
pub fn incr(key: []const u8, delta: i64) Error!i64 {
    var result: i64 = 0;
    try check(kv_incr(key.ptr, @intCast(key.len), delta, &result));
    return result;
}
