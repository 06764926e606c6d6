package inbox

import (
	"errors"
	"fmt"
)

// Bounds of a JSON document decoded from the network. Real activities nest
// a few levels (an activity, its object, a tag or attachment list, an
// image) and hold a few hundred values; the bounds are far above that and
// far below what makes a 1 MiB body cost tens of MiB as maps.
const (
	maxJSONDepth  = 32
	maxJSONValues = 20_000
)

var errJSONShape = errors.New("JSON document too deep or too large")

// checkJSONShape scans data once, without allocating, and refuses a
// document nested deeper than maxJSONDepth or holding more than
// maxJSONValues values, before anything decodes it into maps. It counts
// openings and separators outside strings, which is enough for a bound;
// whether the document is valid JSON is the decoder's to say afterwards.
func checkJSONShape(data []byte) error {
	depth, values := 0, 0
	inString, escaped := false, false
	for _, c := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			values++
			if depth > maxJSONDepth {
				return fmt.Errorf("%w: nested more than %d levels", errJSONShape, maxJSONDepth)
			}
		case '}', ']':
			depth--
		case ',', ':':
			values++
		}
		if values > maxJSONValues {
			return fmt.Errorf("%w: more than %d values", errJSONShape, maxJSONValues)
		}
	}
	return nil
}
