#!/bin/sh
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a
# bounded time on its seed corpus. Any crash, sanitizer report or broken
# property fails the test; the crashing input is left in the build folder.
#
#   tests/fuzz/run.sh [build-dir]      FUZZ_SECONDS (default 20) per target
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$src/build/fuzz}
seconds=${FUZZ_SECONDS:-20}
cc=${CC_FUZZ:-clang}
mkdir -p "$out"

for t in fuzz_proto; do
	"$cc" -g -O1 -std=c11 -D_GNU_SOURCE \
	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	    -I"$src/shared/include" -I"$src/shared/src" -I"$src/relay/src" \
	    "$src/tests/fuzz/$t.c" "$src/shared/src/json.c" \
	    "$src/shared/src/proto.c" \
	    "$src/shared/src/proto_v1.c" "$src/shared/src/utf8.c" \
	    "$src/shared/src/buf.c" \
	    "$src/shared/src/log.c" "$src/shared/src/compat.c" \
	    -lcjson -lpthread -lm -o "$out/$t"
	mkdir -p "$out/corpus-$t"
	(cd "$out" && ./"$t" -max_total_time="$seconds" -timeout=10 \
	    -rss_limit_mb=1024 -print_final_stats=1 "corpus-$t" \
	    "$src/tests/fuzz/seeds")
done

# relay/src/web/web.c: /static/ paths, HTTP dates, If-None-Match lists.
t=fuzz_web
"$cc" -g -O1 -std=c11 -D_GNU_SOURCE \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$src/shared/include" -I"$src/shared/src" -I"$src/relay/src" \
    "$src/tests/fuzz/$t.c" "$src/relay/src/web/web.c" \
    "$src/relay/src/http/http_date.c" "$src/shared/src/sha256.c" \
    -o "$out/$t"
mkdir -p "$out/corpus-$t"
(cd "$out" && ./"$t" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=1024 -print_final_stats=1 "corpus-$t" \
    "$src/tests/fuzz/seeds-web")
# relay/src/http/reqline.c and the header count rule of relay/src/http/framing.c:
# what the error callback reads of a request civetweb refused.
t=fuzz_reqline
"$cc" -g -O1 -std=c11 -D_GNU_SOURCE \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$src/relay/src" \
    "$src/tests/fuzz/$t.c" "$src/relay/src/http/reqline.c" \
    "$src/relay/src/http/framing.c" -o "$out/$t"
mkdir -p "$out/corpus-$t"
(cd "$out" && ./"$t" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=1024 -print_final_stats=1 "corpus-$t" \
    "$src/tests/fuzz/seeds-reqline")
echo "fuzz: all targets ran ${seconds}s without a finding"
