package runtime

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/streamrt/streamrt/runtime/config"
)

// instanceIDFile keeps, in an app's state dir, the static member id its
// instance uses in the app's consumer group.
const instanceIDFile = "instance-id"

// stateInstanceID returns the instance id kept in stateDir, making and
// keeping a new one when there is none. An id is tied to the state: an
// instance restarted on the same state dir rejoins the group as the member
// it was, and gets its partitions (whose stores it holds) straight back. A
// file that does not hold a valid id is replaced, and the log says so: the
// instance then joins as a new member, which costs a rebalance, not data.
func stateInstanceID(stateDir string, log *slog.Logger) (string, error) {
	path := filepath.Join(stateDir, instanceIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if id := strings.TrimSpace(string(b)); config.ValidInstanceID(id) {
			return id, nil
		}
		log.Warn("the instance id file is corrupt; this instance takes a new id and joins its group as a new member", "path", path, "content", fmt.Sprintf("%.40q", b))
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("instance id: %w", err)
	}
	var r [8]byte
	rand.Read(r[:])
	id := "streamrt-" + hex.EncodeToString(r[:])
	// Written whole, then renamed: a crash leaves the old file or the new.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	return id, nil
}
