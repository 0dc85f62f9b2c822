package assign

import (
	"errors"
	"fmt"
)

var (
	// ErrUnsupportedVersion is returned, wrapped in a *VersionError, when a
	// member's metadata or an assignment is encoded in a version this build
	// does not know: a newer instance is in the group, or the bytes are not
	// streamrt's.
	ErrUnsupportedVersion = errors.New("streamrt: unsupported group encoding version")

	// ErrMalformed is returned when a member's metadata or an assignment cannot
	// be decoded: truncated, trailing bytes, out-of-range or unsorted fields.
	ErrMalformed = errors.New("streamrt: malformed group encoding")
)

// VersionError reports an encoding version this build cannot decode.
type VersionError struct {
	Kind      string // "member metadata" or "assignment"
	Version   byte   // the version found
	Supported byte   // the newest version this build decodes
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("streamrt: %s encoding version %d is not supported by this build (it decodes versions 1..%d); "+
		"an instance newer than this one is in the group, so upgrade this instance", e.Kind, e.Version, e.Supported)
}

// Unwrap returns ErrUnsupportedVersion.
func (e *VersionError) Unwrap() error { return ErrUnsupportedVersion }

func malformed(kind, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformed, kind, fmt.Sprintf(format, args...))
}
