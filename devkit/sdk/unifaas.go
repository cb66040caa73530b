// The unifaas hostcalls (wasm import module "unifaas"): the function's key-value store and
// outbound HTTP through the host's allow-list. Outside the platform (`unifaas run`) every
// call answers StatusUnavailable.
package main

import (
	"errors"
	"unsafe"
)

//go:wasmimport unifaas kv_get
func kvGet(key unsafe.Pointer, keyLen uint32, out unsafe.Pointer, cap uint32, outLen unsafe.Pointer) int32

//go:wasmimport unifaas kv_set
func kvSet(key unsafe.Pointer, keyLen uint32, value unsafe.Pointer, valueLen uint32) int32

//go:wasmimport unifaas kv_delete
func kvDelete(key unsafe.Pointer, keyLen uint32) int32

//go:wasmimport unifaas kv_incr
func kvIncr(key unsafe.Pointer, keyLen uint32, delta int64, result unsafe.Pointer) int32

// Hostcall statuses (unifaas.h lists them all).
const (
	StatusOK             = 0
	StatusNotFound       = 1
	StatusBufferTooSmall = 2
	StatusUnavailable    = 13
)

// HostError is a hostcall's status other than OK.
type HostError struct{ Status int32 }

func (e HostError) Error() string { return "unifaas hostcall status " + itoa(int64(e.Status)) }

// ErrNotFound: the key has no value.
var ErrNotFound = errors.New("not found")

func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func check(status int32) error {
	if status == StatusOK {
		return nil
	}
	if status == StatusNotFound {
		return ErrNotFound
	}
	return HostError{status}
}

// KVGet returns the value of key (ErrNotFound when it has none).
func KVGet(key string) ([]byte, error) {
	k := []byte(key)
	buf := make([]byte, 256)
	for {
		var n uint32
		status := kvGet(ptr(k), uint32(len(k)), ptr(buf), uint32(len(buf)), unsafe.Pointer(&n))
		if status == StatusBufferTooSmall {
			buf = make([]byte, n)
			continue
		}
		if err := check(status); err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// KVSet stores value at key.
func KVSet(key string, value []byte) error {
	k := []byte(key)
	return check(kvSet(ptr(k), uint32(len(k)), ptr(value), uint32(len(value))))
}

// KVDelete removes key.
func KVDelete(key string) error {
	k := []byte(key)
	return check(kvDelete(ptr(k), uint32(len(k))))
}

// KVIncr adds delta to the decimal integer at key (a missing key counts from 0).
func KVIncr(key string, delta int64) (int64, error) {
	k := []byte(key)
	var result int64
	err := check(kvIncr(ptr(k), uint32(len(k)), delta, unsafe.Pointer(&result)))
	return result, err
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	neg, digits := n < 0, []byte{}
	if neg {
		n = -n
	}
	for ; n > 0; n /= 10 {
		digits = append([]byte{byte('0' + n%10)}, digits...)
	}
	if neg {
		digits = append([]byte{'-'}, digits...)
	}
	return string(digits)
}
