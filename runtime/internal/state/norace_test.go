//go:build !race

package state

// raceEnabled is true when the tests run under the race detector.
const raceEnabled = false
