//go:build !linux

package main

import "errors"

// promptTTY is only implemented on Linux; elsewhere use MUPDATE_PASSWORD.
func promptTTY(string) (string, error) {
	return "", errors.New("no password prompt on this system")
}
