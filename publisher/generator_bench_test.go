package publisher

import "testing"

func BenchmarkGenerator(b *testing.B) {
	g, err := NewGenerator(1, 0, 0.3, 5)
	if err != nil {
		b.Fatal(err)
	}
	src := generatorSource{g}
	for b.Loop() {
		if _, _, err := src.next(); err != nil {
			b.Fatal(err)
		}
	}
}
