package config

import (
	"errors"
	"strings"
)

// ErrInvalid matches every *Error with errors.Is, so a caller can tell a
// configuration problem from a failure of the runtime it configures.
var ErrInvalid = errors.New("streamrt: invalid configuration")

// Error is one configuration problem: the file it was found in, the key at
// fault and why the value is refused. Load and Parse report several problems
// at once by joining them with errors.Join; use errors.As to get the first
// and errors.Is(err, ErrInvalid) to recognise any.
//
// Key is the YAML path of the value (app, query.max_key_bytes,
// stages[0].batch_size, stages[0].outputs.counts) or, for a value that came
// from the environment or a flag, the name of that variable or flag
// (STREAMRT_PARTITIONS, --state-dir). Key is empty for problems with the file
// as a whole, such as malformed YAML.
type Error struct {
	File   string // the configuration file as named by the caller; empty if none
	Key    string
	Reason string
	Err    error // the underlying cause, if any (for example a *fs.PathError)
}

// Error formats the problem as "file: key: reason", leaving out empty parts.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// problems collects the problems of one configuration. It names keys after
// the source that set them and keeps at most one problem per key: once a
// value failed to decode, checks on what is left of it would only repeat the
// news.
type problems struct {
	file    string
	sources map[string]string // YAML path -> env var or flag that set it
	errs    []error
	keys    map[string]bool // YAML paths that already have a problem
}

// add records a problem with the value at the YAML path key, unless that key
// or one of its parents already has one.
func (p *problems) add(key, reason string) {
	if p.has(key) {
		return
	}
	if p.keys == nil {
		p.keys = make(map[string]bool)
	}
	p.keys[key] = true
	p.errs = append(p.errs, &Error{File: p.file, Key: p.name(key), Reason: reason})
}

// addErr records a problem that has an underlying cause.
func (p *problems) addErr(key, reason string, err error) {
	if p.has(key) {
		return
	}
	p.add(key, reason)
	p.errs[len(p.errs)-1].(*Error).Err = err
}

// has reports whether key or one of its parents already has a problem.
func (p *problems) has(key string) bool {
	for k := key; k != ""; k = parentKey(k) {
		if p.keys[k] {
			return true
		}
	}
	return false
}

// name returns how a problem with key is reported: the env var or flag that
// set the key or one of its parents, else the YAML path.
func (p *problems) name(key string) string {
	for k := key; k != ""; k = parentKey(k) {
		if s, ok := p.sources[k]; ok {
			return s
		}
	}
	return key
}

// err returns nil, the only problem, or all problems joined.
func (p *problems) err() error {
	switch len(p.errs) {
	case 0:
		return nil
	case 1:
		return p.errs[0]
	default:
		return errors.Join(p.errs...)
	}
}

// parentKey returns the parent of a YAML path: "stages" for "stages[0]",
// "stages[0]" for "stages[0].name", "" for "app".
func parentKey(key string) string {
	i := strings.LastIndexAny(key, ".[")
	if i < 0 {
		return ""
	}
	return key[:i]
}
