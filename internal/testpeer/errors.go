package testpeer

import "errors"

// errSippBind is a sipp that exited because one of its ports was taken (StartSipp starts
// it again on new ports).
var errSippBind = errors.New("sipp could not bind a port")
