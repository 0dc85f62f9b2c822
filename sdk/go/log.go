package streamrt

import (
	"fmt"
	"strconv"

	"github.com/streamrt/streamrt/abi"
)

// Level is a log message's severity.
type Level int32

// Levels, as the host's log function numbers them.
const (
	LevelDebug Level = abi.LevelDebug
	LevelInfo  Level = abi.LevelInfo
	LevelWarn  Level = abi.LevelWarn
	LevelError Level = abi.LevelError
)

// Log sends msg to the host's log at the given level.
func Log(level Level, msg string) { logMessage(int32(level), msg) }

// Debugf logs at LevelDebug, formatting as fmt.Sprintf does.
func Debugf(format string, args ...any) { Log(LevelDebug, fmt.Sprintf(format, args...)) }

// Infof logs at LevelInfo.
func Infof(format string, args ...any) { Log(LevelInfo, fmt.Sprintf(format, args...)) }

// Warnf logs at LevelWarn.
func Warnf(format string, args ...any) { Log(LevelWarn, fmt.Sprintf(format, args...)) }

// Errorf logs at LevelError. It returns nothing: to fail a record, return an
// error from the handler.
func Errorf(format string, args ...any) { Log(LevelError, fmt.Sprintf(format, args...)) }

// String returns the level's name, such as "warn".
func (l Level) String() string {
	switch l {
	case LevelDebug:
		return "debug"
	case LevelInfo:
		return "info"
	case LevelWarn:
		return "warn"
	case LevelError:
		return "error"
	}
	return "level(" + strconv.Itoa(int(l)) + ")"
}
