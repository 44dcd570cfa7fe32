package admission

import "time"

type timeT = time.Time

func unix(s int64) time.Time { return time.Unix(s, 0) }
