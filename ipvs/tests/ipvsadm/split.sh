#!/bin/sh
# Splits the output of capture.sh (stdin) into CASE.cmds and CASE.save files in this
# directory. See capture.sh.
set -eu
dir=$(dirname "$0")
awk -v dir="$dir" '
/^=== case / { name = $3; cmds = dir "/" name ".cmds"; save = dir "/" name ".save";
               printf "" > cmds; printf "" > save; mode = ""; next }
/^--- cmd /  { sub(/^--- cmd /, ""); print >> cmds; next }
/^--- exit / { sub(/^--- /, "# "); print >> cmds; next }
/^--- save$/ { mode = "save"; next }
/^--- end$/  { mode = ""; close(cmds); close(save); next }
mode == "save" { print >> save }
'
