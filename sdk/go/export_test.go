//go:build !wasip1

package streamrt

// For the examples, which live in package streamrt_test to show the API as a
// guest sees it. The fake host exists only in tests.

// NewFakeHost installs an in-process fake of the streamrt host and resets
// the SDK as a new instance would be.
var NewFakeHost = newFakeHost
