package topology

import "errors"

// errNoHealthcheck is returned by Up when a service depends on another being healthy and
// that one has no healthcheck (Compose refuses such a file too).
var errNoHealthcheck = errors.New("depends on it being healthy, but it has no healthcheck")
