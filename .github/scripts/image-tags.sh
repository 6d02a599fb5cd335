#!/bin/bash
# Prints the image references to publish for the current commit, one per
# line, for the release pipeline (.github/workflows/image.yml) and for the
# local-registry test (tests/image/test_tags.py):
#
#   IMAGE:sha-<7 hex>          every push (branch or tag)
#   IMAGE:X.Y.Z and IMAGE:X.Y  a push of tag vX.Y.Z
#   IMAGE:X.Y.Z-rc.1           a push of tag vX.Y.Z-rc.1 (pre-releases get
#                              no X.Y alias)
#
#   .github/scripts/image-tags.sh IMAGE
#
# There is no `latest` tag (docs/relay-deploy.md): deployments name a sha-
# tag, a version or a digest, so what runs is always known.
#
# The ref and commit come from GITHUB_REF and GITHUB_SHA when set (GitHub
# Actions), else from git in the current directory. Same scheme as
# docker/metadata-action with type=sha,prefix=sha-,format=short (7 hex) and
# type=semver patterns {{version}} and {{major}}.{{minor}}; image.yml checks
# that both agree.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ] || [ "${1#-}" != "$1" ]; then
	echo "usage: $0 IMAGE (there is no latest tag; see docs/relay-deploy.md)" >&2
	exit 2
fi
image=$1

sha=${GITHUB_SHA:-$(git rev-parse HEAD)}
if ! [[ $sha =~ ^[0-9a-f]{40}$ ]]; then
	echo "image-tags: '$sha' is not a full commit id" >&2
	exit 1
fi
ref=${GITHUB_REF:-}
if [ -z "$ref" ]; then
	# Locally: a tag pointing at HEAD counts as a tag push.
	t=$(git describe --tags --exact-match --match 'v[0-9]*' HEAD 2>/dev/null || true)
	if [ -n "$t" ]; then
		ref=refs/tags/$t
	else
		ref=refs/heads/$(git rev-parse --abbrev-ref HEAD)
	fi
fi

echo "$image:sha-${sha:0:7}"

# Semantic Versioning 2.0.0 core plus optional pre-release and build parts;
# a build part cannot appear in a tag (+ is not allowed), so it is dropped.
semver='^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$'
if [[ $ref == refs/tags/* ]]; then
	tag=${ref#refs/tags/}
	if [[ $tag =~ $semver ]]; then
		major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]} patch=${BASH_REMATCH[3]}
		pre=${BASH_REMATCH[4]}
		echo "$image:$major.$minor.$patch$pre"
		if [ -z "$pre" ]; then
			echo "$image:$major.$minor"
		fi
	else
		echo "image-tags: tag '$tag' is not vX.Y.Z; publishing the sha tag only" >&2
	fi
fi
