//! __NAME__: a unifaas function in Zig (WAGI: the request's method and path in the
//! environment, its body on stdin; CGI headers, a blank line, then the body on stdout).
//! It answers JSON saying what it received and how often it was called, a count kept in
//! its key-value store through the hostcalls of unifaas.zig.
const std = @import("std");
const unifaas = @import("unifaas.zig");

pub fn main(init: std.process.Init) !void {
    const io = init.io;
    const method = init.environ_map.get("REQUEST_METHOD") orelse "";
    var path = init.environ_map.get("PATH_INFO") orelse "";
    if (path.len == 0) path = "/";

    var in_buffer: [4096]u8 = undefined;
    var stdin = std.Io.File.stdin().reader(io, &in_buffer);
    const received = try stdin.interface.discardRemaining();

    // null: no store outside the platform (unifaas run), or a quota
    const calls: ?i64 = unifaas.incr("calls", 1) catch null;

    var out_buffer: [4096]u8 = undefined;
    var stdout_writer = std.Io.File.stdout().writer(io, &out_buffer);
    const out = &stdout_writer.interface;
    try out.writeAll("Content-Type: application/json\n\n");
    try std.json.Stringify.value(.{
        .function = "__NAME__",
        .language = "zig",
        .method = method,
        .path = path,
        .received_bytes = received,
        .calls = calls,
    }, .{}, out);
    try out.writeAll("\n");
    try out.flush();
}
