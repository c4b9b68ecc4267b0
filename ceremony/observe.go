package ceremony

import "github.com/kmsbridge/kmsbridge/kmsimport"

// FactKeyLabel is the fact every record entry of a ceremony key carries:
// the key's hsm-label in the file, so the record can be read key by key.
const FactKeyLabel = "CeremonyKeyLabel"

// LabelledObserver is a Runner's Observe that adds FactKeyLabel to each
// event's facts and hands the event to record. A nil record gives nil.
func LabelledObserver(record func(kmsimport.StepEvent)) func(Key, kmsimport.StepEvent) {
	if record == nil {
		return nil
	}
	return func(k Key, ev kmsimport.StepEvent) {
		if ev.Facts == nil {
			ev.Facts = map[string]string{}
		}
		ev.Facts[FactKeyLabel] = k.HSMLabel
		record(ev)
	}
}
