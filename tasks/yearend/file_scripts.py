"""The shell scripts the year-end file steps run on the file server (POSIX sh, GNU coreutils/find/tar,
zip/unzip for zip archives).

Each is a fixed text run as `sh -c SCRIPT sh ARG...`: the variable parts (paths, the month) travel as
quoted positional arguments, never pasted into the script (tasks/connect/ssh.py, run_script). The
plan step's text is exactly that command line, so what the hospital approves is what runs.

The verification runs on the file server itself: a month of layout files can be gigabytes, and
re-reading the archive there needs no transfer. Member lists are in `sha256sum` format
(`<sha256>  <yyyy>/<mm>/<file>`), so the hospital's admin can check an archive with standard tools:
`cd <scratch> && tar -xzf <archive> && sha256sum -c <archive>.sha256`.

The scripts of plan steps (ARCHIVE, REMOVE) hold no single quote, so the quoted command a reviewer
reads in the plan is the script itself between two quotes (test_yearend_files_pure checks it).
"""
from __future__ import annotations

# $1 root, $2 month (yyyy/mm), $3 archive, $4 member list, $5 format (tar.gz | zip)
_ARGS = 'set -eu\nroot=$1 month=$2 archive=$3 list=$4 fmt=$5\n'
_UNPACK = ('unpack() { if [ "$fmt" = zip ]; then unzip -q "$1" -d "$2"; '
           'else tar -xzf "$1" -C "$2"; fi; }\n')

# Pack one month into <archive>.part, re-read it (every member extracted and hashed), compare with
# the originals' hashes, and only then publish the archive and its member list (rename). Prints the
# member list, then each member's size, then the archive's size.
ARCHIVE = _ARGS + _UNPACK + r'''cd "$root"
test -d "$month" || { echo "no folder $root/$month" >&2; exit 3; }
mkdir -p "${archive%/*}"
x=$(mktemp -d)
cleanup() { rm -rf "$x" "$archive.part" "$list.part"; }
trap cleanup EXIT
find "$month" -type f -exec sha256sum -- {} + | LC_ALL=C sort -k2 > "$x/orig"
test -s "$x/orig" || { echo "no files in $root/$month" >&2; exit 3; }
rm -f "$archive.part"
if [ "$fmt" = zip ]; then zip -q -r -X "$archive.part" "$month"; else tar -czf "$archive.part" "$month"; fi
mkdir "$x/m"
unpack "$archive.part" "$x/m" || { echo "the new archive cannot be read back" >&2; exit 4; }
(cd "$x/m" && find "$month" -type f -exec sha256sum -- {} +) | LC_ALL=C sort -k2 > "$x/read"
if ! cmp -s "$x/orig" "$x/read"; then
  echo "archive members differ from the originals:" >&2; diff "$x/orig" "$x/read" >&2 || true; exit 4
fi
cp "$x/read" "$list.part"
mv -f "$archive.part" "$archive"
mv -f "$list.part" "$list"
echo "#members"; cat "$list"
echo "#sizes"; (cd "$x/m" && find "$month" -type f -printf "%s %p\\n")
echo "#archive $(stat -c %s "$archive")"
'''

# Re-read an archive: every member extracted and checked against the member list, and no member
# beyond it. Exit 10: archive or list missing; 11: unreadable archive; 12: members differ.
_VERIFY_BODY = r'''test -f "$archive" && test -f "$list" || { echo "archive or member list missing: $archive" >&2; exit 10; }
x=$(mktemp -d)
cleanup() { rm -rf "$x"; }
trap cleanup EXIT
unpack "$archive" "$x" || { echo "archive unreadable: $archive" >&2; exit 11; }
(cd "$x" && sha256sum --check --strict --quiet "$list") >&2 || { echo "archive members differ from $list" >&2; exit 12; }
test "$(cd "$x" && find . -type f | wc -l)" -eq "$(wc -l < "$list")" \
  || { echo "the archive holds members its list does not name" >&2; exit 12; }
'''
VERIFY = _ARGS + _UNPACK + _VERIFY_BODY + 'echo "verified $(wc -l < "$list") members"\n'

# Remove a month's originals: the archive is re-read and verified first, then the originals are
# checked against the member list (a file changed since packing is not the archived one), then
# exactly the listed files are removed. Resumable: files already gone are skipped.
REMOVE = _ARGS + _UNPACK + _VERIFY_BODY + r'''cd "$root"
n=0
while IFS= read -r line; do if [ -e "${line#*  }" ]; then n=$((n+1)); fi; done < "$list"
if [ "$n" -eq 0 ]; then echo "removed 0 (none left)"; exit 0; fi
sha256sum --check --strict --quiet --ignore-missing "$list" >&2 \
  || { echo "originals differ from the archived members: nothing removed" >&2; exit 13; }
while IFS= read -r line; do rm -f -- "${line#*  }"; done < "$list"
rmdir "$month" 2>/dev/null || true
echo "removed $n"
'''

# How many of the listed originals are still there (0 = the removal is done). $1 root, $2 list.
REMAINING = r'''set -eu
cd "$1"
test -f "$2" || { echo "no member list $2" >&2; exit 10; }
n=0
while IFS= read -r line; do if [ -e "${line#*  }" ]; then n=$((n+1)); fi; done < "$2"
echo "$n"
'''

# The months under the layout root and, for each, its file count and bytes; then the archives
# already in the archive folder. $1 root, $2 archive dir.
SURVEY = r'''set -eu
cd "$1"
for d in [0-9][0-9][0-9][0-9]/[0-1][0-9]; do
  [ -d "$d" ] || continue
  echo "month $d $(find "$d" -type f -printf '%s\n' | awk '{n++; s+=$1} END {print n+0, s+0}')"
done
if [ -d "$2" ]; then
  for a in "$2"/layout-*; do [ -f "$a" ] && echo "archive ${a##*/}"; done
fi
exit 0
'''

# One layout file by name (<bill code><bill number>), base64: from the archive whose member list
# names it, else the original. $1 root, $2 archive dir, $3 name. Prints the source, the expected
# SHA-256 where a member list gives it, then the bytes.
EXTRACT = r'''set -eu
root=$1 adir=$2 name=$3
for list in "$adir"/layout-*.sha256; do
  [ -f "$list" ] || continue
  line=$(grep -E "/$name\.(pdf|ofd|PDF|OFD)\$" "$list" | head -n 1) || true
  [ -n "$line" ] || continue
  member=${line#*  } archive=${list%.sha256}
  echo "archive $archive $member"
  echo "${line%%  *}"
  case "$archive" in
    *.zip) unzip -p "$archive" "$member" | base64 -w0 ;;
    *) tar -xzOf "$archive" "$member" | base64 -w0 ;;
  esac
  echo
  exit 0
done
f=$(find "$root" -type f \( -name "$name.pdf" -o -name "$name.ofd" \) -print 2>/dev/null | head -n 1)
if [ -n "$f" ]; then
  echo "original $f"
  sha256sum -- "$f" | cut -c1-64
  base64 -w0 -- "$f"
  echo
  exit 0
fi
echo "no layout file $name under $root nor in the archives of $adir" >&2
exit 20
'''

# The filesystem of the layout root and where each fragmentation tool is. $1 root, then the
# directories to look in.
TOOLS = r'''root=$1; shift
echo "fs $(stat -f -c %T "$root")"
echo "dev $(df -P "$root" | awk 'NR==2 {print $1}')"
for t in e4defrag xfs_db filefrag; do
  p=""
  for d in "$@"; do if [ -x "$d/$t" ]; then p="$d/$t"; break; fi; done
  echo "tool $t $p"
done
'''

# filefrag over at most $3 layout files (a sample keeps a large tree's measurement short).
FILEFRAG = r'''set -eu
find "$2" -type f \( -name '*.pdf' -o -name '*.ofd' -o -name '*.PDF' -o -name '*.OFD' \) | head -n "$3" \
  | while IFS= read -r f; do "$1" -- "$f"; done
'''
