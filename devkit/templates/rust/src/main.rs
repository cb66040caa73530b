//! __NAME__: a unifaas function in Rust (WAGI: the request's method and path in the
//! environment, its body on stdin; CGI headers, a blank line, then the body on stdout).
//! It answers JSON saying what it received and how often it was called, a count kept in
//! its key-value store through the hostcalls of `unifaas.rs`.
mod unifaas;

use std::env;
use std::io::{self, Read};

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() {
    let method = env::var("REQUEST_METHOD").unwrap_or_default();
    let path = env::var("PATH_INFO").unwrap_or_default();
    let path = if path.is_empty() { "/".to_string() } else { path };
    let mut body = Vec::new();
    io::stdin().read_to_end(&mut body).expect("the request body");
    // No store outside the platform (unifaas run), or a quota: null.
    let calls = unifaas::incr("calls", 1).map_or("null".to_string(), |n| n.to_string());
    print!("Content-Type: application/json\n\n");
    println!(
        "{{\"function\": \"__NAME__\", \"language\": \"rust\", \"method\": {}, \"path\": {}, \"received_bytes\": {}, \"calls\": {}}}",
        json_string(&method),
        json_string(&path),
        body.len(),
        calls
    );
}
