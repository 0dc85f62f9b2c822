//go:build !unix

package state

import "errors"

// FreeSpace is not measured on this system: the free-space watermark is
// off.
func FreeSpace(dir string) (Space, error) {
	return Space{}, errors.New("free space is measured on Unix systems only")
}
