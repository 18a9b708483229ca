package uts

import "testing"

// TestSubscriptionNamesAreReachable: a name is a URL path segment, and "." and ".." are not
// segments a client can send (routers and clients resolve them away, and Go's ServeMux
// redirects them), so a subscription under either could be created by no request and read by
// none. They are refused with the other bad names.
func TestSubscriptionNamesAreReachable(t *testing.T) {
	for _, name := range []string{".", "..", "", "a/b", "a%2Fb", "é"} {
		if err := CheckSubscriptionName(name); KindOf(err) != KindInvalid {
			t.Errorf("CheckSubscriptionName(%q) = %v, want KindInvalid", name, err)
		}
	}
	for _, name := range []string{"a", "...", ".a", "a..b", "orders-v2.1_x"} {
		if err := CheckSubscriptionName(name); err != nil {
			t.Errorf("CheckSubscriptionName(%q) = %v, want nil", name, err)
		}
	}
}
