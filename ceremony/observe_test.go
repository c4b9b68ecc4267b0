package ceremony

import "testing"

func TestLabelledObserverOfNilIsNil(t *testing.T) {
	if LabelledObserver(nil) != nil {
		t.Error("LabelledObserver(nil) is not nil: a run without a record would call it")
	}
}
