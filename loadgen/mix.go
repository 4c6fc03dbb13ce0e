package loadgen

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// An Op is one kind of thing a customer does in the shop. Each is one
// HTTP call through the gateway, chosen at random where it has variants.
type Op string

const (
	// Browse reads the catalogue, one product of it, or its
	// recommendations, without logging in.
	Browse Op = "browse"
	// Login exchanges a customer's email and password for a fresh token.
	Login Op = "login"
	// Checkout orders one or two products, one unit each, paid with the
	// approving test card.
	Checkout Op = "checkout"
	// Orders lists the customer's orders, or fetches one they placed.
	Orders Op = "orders"
)

// Ops lists every operation, in the order reports show them.
func Ops() []Op { return []Op{Browse, Login, Checkout, Orders} }

func (op Op) known() bool {
	switch op {
	case Browse, Login, Checkout, Orders:
		return true
	}
	return false
}

// A Mix weighs the operations: a request is op with probability
// Mix[op] / (sum of the weights). An operation not in the mix is never sent.
//
// A *Mix is a flag.Value, written as in ParseMix.
type Mix map[Op]int

// DefaultMix is mostly browsing, as in a real shop, with enough checkouts
// to keep the saga (inventory, payments, orders) busy.
func DefaultMix() Mix {
	return Mix{Browse: 60, Login: 10, Checkout: 20, Orders: 10}
}

// ParseMix reads weights written as "browse=60,login=10,checkout=20,orders=10".
// Operations left out weigh nothing: "browse=1" sends only browse requests.
func ParseMix(s string) (Mix, error) {
	m := Mix{}
	for part := range strings.SplitSeq(s, ",") {
		name, weight, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("mix %q: %q is not op=weight", s, part)
		}
		op := Op(strings.TrimSpace(name))
		if _, dup := m[op]; dup {
			return nil, fmt.Errorf("mix %q: %s given twice", s, op)
		}
		w, err := strconv.Atoi(strings.TrimSpace(weight))
		if err != nil {
			return nil, fmt.Errorf("mix %q: weight of %s is not an integer", s, op)
		}
		m[op] = w
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("mix %q: %w", s, err)
	}
	return m, nil
}

func (m Mix) validate() error {
	total := 0
	for op, w := range m {
		if !op.known() {
			return fmt.Errorf("unknown operation %q (want %s)", op, strings.Join(opNames(), ", "))
		}
		if w < 0 {
			return fmt.Errorf("weight of %s is negative", op)
		}
		total += w
	}
	if total == 0 {
		return errors.New("every weight is zero")
	}
	return nil
}

// String writes the mix as ParseMix reads it, in the order of Ops.
func (m Mix) String() string {
	var parts []string
	for _, op := range Ops() {
		if w, ok := m[op]; ok {
			parts = append(parts, fmt.Sprintf("%s=%d", op, w))
		}
	}
	return strings.Join(parts, ",")
}

// Set replaces the mix with the one s describes.
func (m *Mix) Set(s string) error {
	parsed, err := ParseMix(s)
	if err != nil {
		return err
	}
	*m = parsed
	return nil
}

// pick draws an operation; the mix must be valid.
// Share is the fraction of requests that are op (0 for an empty mix).
func (m Mix) Share(op Op) float64 {
	total := 0
	for _, w := range m {
		total += w
	}
	if total == 0 {
		return 0
	}
	return float64(m[op]) / float64(total)
}

func (m Mix) pick() Op {
	total := 0
	for _, w := range m {
		total += w
	}
	n := rand.IntN(total)
	for _, op := range Ops() {
		if n < m[op] {
			return op
		}
		n -= m[op]
	}
	panic("loadgen: pick from an invalid mix")
}

func opNames() []string {
	var names []string
	for _, op := range Ops() {
		names = append(names, string(op))
	}
	return names
}
