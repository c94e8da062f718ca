// Package park keeps idle client connections waiting for their next
// message without a goroutine each: a Lot is one goroutine blocked in
// epoll_wait for every socket parked in it. A goroutine blocked on each
// idle client would hold its stack (8 KiB once a login has grown it) and
// its read buffer; parked, a client costs its heap state alone (issue 14).
//
// The Lot watches the socket level-triggered, once (EPOLLONESHOT): a
// socket with bytes already waiting fires at once, so nothing that
// arrived before Wait is missed. Go's own poller keeps the same socket
// registered (edge-triggered) and records that it is readable; the
// goroutine that resumes the client reads it as usual.
package park
