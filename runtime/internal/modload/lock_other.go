//go:build !unix

package modload

import "sync"

var buildMu sync.Mutex

// lockFile serialises builds within the process only: elsewhere than on
// Unix, parallel processes building one AssemblyScript project may race.
func lockFile(string) (func(), error) {
	buildMu.Lock()
	return buildMu.Unlock, nil
}
