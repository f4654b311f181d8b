package badger

import "context"

// ctx is the context of the tests' reads and writes, which never end it.
var ctx = context.Background()
