#!/bin/sh
# Runs every native Go fuzz target of the module for $FUZZTIME each, one
# after the other (each uses every core). Targets are found by name, so a
# new func FuzzXxx in any _test.go is picked up without listing it here.
#
# go test -fuzz takes one package and one target at a time and links a new
# instrumented test binary each time (seconds apiece), so the binaries are
# built once, together, with the instrumentation go test -fuzz applies:
# -d=libfuzzer on every package except the few it leaves out because they
# run beside the fuzzer and would only add noise to its coverage signal.
#
# A failing input is written under the package's testdata/fuzz/<target>/:
# commit it with the fix, as a regression case.
set -eu
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-5s}

# Nested modules (tools/*) are not part of ./... and are left out.
targets=$(grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' \
	--exclude-dir=tools --exclude-dir=bin --exclude-dir=.git . |
	sed -E 's|^\./(.*)/[^/]*_test\.go:func (Fuzz.*)$|\1 \2|' | sort -u)
[ -n "$targets" ] || { echo "fuzz: no targets found"; exit 1; }
dirs=$(echo "$targets" | cut -d' ' -f1 | uniq)
module=$("$GO" list -m)
cache=$("$GO" env GOCACHE)/fuzz

set -- -gcflags=all=-d=libfuzzer
for p in context internal/fuzz internal/godebug internal/runtime/maps internal/sync \
	reflect runtime sync sync/atomic syscall testing time; do
	set -- "$@" "-gcflags=$p="
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
# go test -c -o DIR/ names each binary after its package's last element.
if [ "$(echo "$dirs" | xargs -n1 basename | sort | uniq -d)" = "" ]; then
	"$GO" test -c "$@" -o "$work/" $(echo "$dirs" | sed 's|^|./|')
else
	for dir in $dirs; do
		"$GO" test -c "$@" -o "$work/$(basename "$dir").test" "./$dir"
	done
fi
echo "fuzz: built $(echo "$dirs" | wc -l) test binaries in $(($(date +%s) - start))s"

count=0
IFS='
'
for target in $targets; do
	dir=${target% *} name=${target#* }
	bin=$work/$(basename "$dir").test
	[ -x "$bin" ] || { echo "fuzz: no test binary for ./$dir"; exit 1; }
	count=$((count + 1))
	corpus=$(ls "$dir/testdata/fuzz/$name" 2>/dev/null | wc -l)
	run() {
		(cd "$dir" && "$bin" -test.run='^$' -test.fuzz="^$name\$" -test.fuzztime="$FUZZTIME" \
			-test.fuzzcachedir="$cache/$module/$dir") >"$work/log" 2>&1
	}
	# Go's fuzzing coordinator sometimes reports "context deadline
	# exceeded" when -fuzztime ends during an exchange with a worker: no
	# input failed and none is written. That, and only that, is run once
	# more; the second run must pass like any other.
	status=0
	run || status=$?
	if [ "$status" -ne 0 ] && grep -qx '    context deadline exceeded' "$work/log" &&
		[ "$(ls "$dir/testdata/fuzz/$name" 2>/dev/null | wc -l)" = "$corpus" ]; then
		echo "fuzz: $name in ./$dir ended with the fuzzer's own deadline error and no failing input; once more"
		status=0
		run || status=$?
	fi
	if [ "$status" -ne 0 ]; then
		cat "$work/log"
		echo "fuzz: $name in ./$dir FAILED (the input is in ./$dir/testdata/fuzz/$name/)"
		exit 1
	fi
	echo "fuzz: $name in ./$dir: $(grep -Eo 'execs: [0-9]+' "$work/log" | tail -1 | cut -d' ' -f2) execs"
done
echo "fuzz: $count targets, $FUZZTIME each, in $(($(date +%s) - start))s"
