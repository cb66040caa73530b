// __NAME__: a unifaas function in Go (WAGI: the request's method and path in the
// environment, its body on stdin; CGI headers, a blank line, then the body on stdout).
// It answers JSON saying what it received and how often it was called, a count kept in
// its key-value store through the hostcalls of unifaas.go.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

func main() {
	body, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading the request body:", err)
		os.Exit(1)
	}
	path := os.Getenv("PATH_INFO")
	if path == "" {
		path = "/"
	}
	var calls any // null: no store outside the platform (unifaas run), or a quota
	if n, err := KVIncr("calls", 1); err == nil {
		calls = n
	}
	answer, _ := json.Marshal(map[string]any{
		"calls":          calls,
		"function":       "__NAME__",
		"language":       "go",
		"method":         os.Getenv("REQUEST_METHOD"),
		"path":           path,
		"received_bytes": len(body),
	})
	fmt.Print("Content-Type: application/json\n\n")
	fmt.Println(string(answer))
}
