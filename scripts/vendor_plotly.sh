#!/usr/bin/env bash
# Fetches the plotly.js partial bundle the pages load (app/static/plotly/): the official
# "cartesian" build (bar, box, contour, heatmap, histogram, image, pie, scatter, violin),
# at the plotly.js version of the installed plotly package, so that the pages draw with
# the same plotly.js as the reports that inline the package's full bundle. A third of the
# full bundle's size and start-up time; the dashboard uses no other trace type (its
# parallel coordinates are SVG lines, lib/charts.js). Needs npm and its registry; rerun
# after upgrading plotly, then commit the file.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(.venv/bin/python -c 'import plotly.offline as o, re; print(re.search(r"plotly\.js v(\S+)", o.get_plotlyjs()[:300]).group(1))')
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
(cd "$dir" && npm pack --silent "plotly.js-cartesian-dist-min@$version" >/dev/null && tar -xzf ./*.tgz)
mkdir -p app/static/plotly
cp "$dir/package/plotly-cartesian.min.js" "$dir/package/LICENSE" app/static/plotly/
echo "app/static/plotly/plotly-cartesian.min.js: plotly.js $version (cartesian)"
