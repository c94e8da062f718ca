package session

import "strings"

// A client's RESET or DISCARD ALL takes a server back to the server's own
// defaults; on a connection of its own the client would go back to what
// it asked for at startup (application_name, TimeZone, the options
// parameter's settings, ...). pgvalve shows the client what its own server
// would have reported, and puts the startup values back on the server
// before the client's next statement.

// resetsSettings reports whether a CommandComplete tag says the client
// took settings back to their defaults.
func resetsSettings(tag []byte) bool {
	switch string(tag) {
	case "RESET\x00", "DISCARD ALL\x00":
		return true
	}
	return false
}

// startupValue is the value the client gave name at startup, if any.
func (s *Session) startupValue(name string) (string, bool) {
	for i := len(s.params) - 1; i >= 0; i-- {
		if strings.EqualFold(s.params[i].Name, name) {
			return s.params[i].Value, true
		}
	}
	return "", false
}
