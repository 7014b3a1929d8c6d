package asadapter

// Direction is an SDP media direction attribute (RFC 3264 section 5.1).
type Direction string

// The SDP directions.
const (
	SendRecv Direction = "sendrecv"
	SendOnly Direction = "sendonly"
	RecvOnly Direction = "recvonly"
	Inactive Direction = "inactive"
)
