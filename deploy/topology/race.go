//go:build race

package topology

// raceEnabled: the tests run with -race, so the gateways are built with it too (their
// packages are then already compiled for the test binary, and a data race in a gateway
// under the real topology fails the test).
const raceEnabled = true
