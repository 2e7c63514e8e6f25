package bootsign

import "github.com/goheads/goheads/pkg/tpm"

// TPMCounter is the rollback Counter backed by the TPM's monotonic counter.
type TPMCounter struct{ T *tpm.TPM }

// Read returns Heads' counter file content for id.
func (c TPMCounter) Read(id string) ([]byte, error) {
	v, err := c.T.CounterRead(id)
	if err != nil {
		return nil, err
	}
	return v.File, nil
}

// Increment advances the counter and returns the new counter file content.
func (c TPMCounter) Increment(id string) ([]byte, error) {
	v, err := c.T.CounterIncrement(id)
	if err != nil {
		return nil, err
	}
	return v.File, nil
}
