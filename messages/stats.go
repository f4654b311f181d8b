package messages

// CommitCounts is what the store writer has committed since the engine started: its group
// commits (batches), the writes they carried, and how many batches had each size. The mean
// batch size, Writes/Commits, says how much group commit saves: each commit is one synced
// transaction (one fsync, or one database round trip).
type CommitCounts struct {
	// Commits counts the batches handed to the store.
	Commits uint64 `json:"commits"`
	// Writes counts the writes (store operations) those batches carried.
	Writes uint64 `json:"writes"`
	// BatchSizes counts the batches by size, in buckets whose bounds double: 1, 2, 3-4, 5-8, …
	// up to the writer's largest batch. Only buckets with a batch are listed.
	BatchSizes []BatchSizeCount `json:"batchSizes"`
}

// BatchSizeCount is one bucket of CommitCounts.BatchSizes: Batches batches of From to To
// writes.
type BatchSizeCount struct {
	From    int    `json:"from"`
	To      int    `json:"to"`
	Batches uint64 `json:"batches"`
}
