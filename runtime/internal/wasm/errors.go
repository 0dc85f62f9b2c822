package wasm

import (
	"errors"
	"fmt"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrInvalidModule is wrapped by every error that refuses a module at load.
	ErrInvalidModule = errors.New("streamrt: invalid module")
	// ErrTrap is wrapped by the error of a guest call that trapped or exited:
	// the instance is unusable and must be replaced.
	ErrTrap = errors.New("streamrt: guest trapped")
	// ErrDeadline is wrapped by the error of a guest call that overran its
	// deadline: the instance was stopped and must be replaced.
	ErrDeadline = errors.New("streamrt: guest overran its deadline")
	// ErrBatchFailed is wrapped when streamrt_process returned non-zero.
	ErrBatchFailed = errors.New("streamrt: guest failed the batch")
)

// ModuleError refuses a module, naming it and what is wrong.
type ModuleError struct {
	Module string // file name or other label of the module
	Reason string
}

func (e *ModuleError) Error() string { return fmt.Sprintf("module %s: %s", e.Module, e.Reason) }

// Unwrap makes every ModuleError match ErrInvalidModule.
func (e *ModuleError) Unwrap() error { return ErrInvalidModule }

// CallError reports a failed guest call.
type CallError struct {
	Module string
	Kind   error  // ErrTrap, ErrDeadline or ErrBatchFailed
	Detail string // the trap's text, the guest's message or its captured stderr
	Cause  error  // wazero's error, if any
}

func (e *CallError) Error() string {
	msg := fmt.Sprintf("module %s: %v", e.Module, e.Kind)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Unwrap returns both the kind sentinel and the cause.
func (e *CallError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Cause}
}
