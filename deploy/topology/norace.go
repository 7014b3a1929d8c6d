//go:build !race

package topology

// raceEnabled: see race.go.
const raceEnabled = false
