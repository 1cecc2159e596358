#!/usr/bin/env bash
# Install the radview desktop build for one user (default) or into any PREFIX.
#
#   packaging/linux/install.sh                     into ~/.local
#   packaging/linux/install.sh --prefix /opt/rv    into /opt/rv (or PREFIX=/opt/rv)
#   packaging/linux/install.sh --uninstall [--prefix DIR]
#
# Options: --from DIR   the built folder (default: the build this script lies in, as
#                       dist/radview/linux/install.sh, else the checkout's dist/radview)
#          --no-caches  do not refresh the MIME, desktop and icon caches
#
# Installs:
#   PREFIX/lib/radview/                       the build (replaced as a whole)
#   PREFIX/bin/radview                        link to PREFIX/lib/radview/radview
#   PREFIX/share/applications/radview.desktop (Exec = the absolute PREFIX/bin/radview)
#   PREFIX/share/icons/hicolor/*/apps/radview.{png,svg}
#   PREFIX/share/mime/packages/radview.xml    application/dicom: *.dcm, DICOMDIR, DICM magic
#   PREFIX/share/metainfo/io.github.radview.metainfo.xml
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
if [ -x "$here/../radview" ] && [ -d "$here/../_internal" ]; then
  from=$here/..                     # shipped inside the build: dist/radview/linux/
else
  from=$here/../../dist/radview     # from the checkout: packaging/linux/
fi
prefix=${PREFIX:-$HOME/.local}
uninstall=0
caches=1
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) prefix=$2; shift ;;
    --prefix=*) prefix=${1#*=} ;;
    --from) from=$2; shift ;;
    --from=*) from=${1#*=} ;;
    --uninstall) uninstall=1 ;;
    --no-caches) caches=0 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)

app=$prefix/lib/radview
bin=$prefix/bin/radview
share=$prefix/share
desktop=$share/applications/radview.desktop
mime=$share/mime/packages/radview.xml
metainfo=$share/metainfo/io.github.radview.metainfo.xml
icons=$share/icons/hicolor
sizes="16 32 48 64 128 256"

refresh_caches() {
  [ "$caches" = 1 ] || return 0
  if command -v update-mime-database >/dev/null; then
    update-mime-database "$share/mime" >/dev/null 2>&1 || true
  fi
  if command -v update-desktop-database >/dev/null; then
    update-desktop-database -q "$share/applications" 2>/dev/null || true
  fi
  if command -v gtk-update-icon-cache >/dev/null && [ -f "$icons/index.theme" ]; then
    gtk-update-icon-cache -q -f -t "$icons" 2>/dev/null || true
  fi
  return 0
}

if [ "$uninstall" = 1 ]; then
  rm -rf "$app"
  # only our own link and files
  if [ -L "$bin" ]; then rm -f "$bin"; fi
  rm -f "$desktop" "$mime" "$metainfo" "$icons/scalable/apps/radview.svg"
  for s in $sizes; do rm -f "$icons/${s}x${s}/apps/radview.png"; done
  refresh_caches
  echo "radview removed from $prefix"
  exit 0
fi

if [ ! -x "$from/radview" ]; then
  echo "install.sh: no build at $from (run packaging/build.sh first, or give --from DIR)" >&2
  exit 2
fi
from=$(cd "$from" && pwd)
icon_src=$from/_internal/resources/icons
[ -f "$icon_src/radview.svg" ] || icon_src=$here/../../resources/icons

mkdir -p "$prefix/lib" "$prefix/bin" "$share/applications" "$share/mime/packages" \
  "$share/metainfo" "$icons/scalable/apps"
# Copy next to the old install, then swap, so a failed copy leaves the old one working.
rm -rf "$app.new"
cp -a "$from" "$app.new"
rm -rf "$app"
mv "$app.new" "$app"
ln -sfn "$app/radview" "$bin"

sed -e "s|^Exec=radview|Exec=$bin|" -e "s|^TryExec=radview|TryExec=$bin|" \
  "$here/radview.desktop" > "$desktop"
install -m 644 "$here/radview-mime.xml" "$mime"
install -m 644 "$here/io.github.radview.metainfo.xml" "$metainfo"
install -m 644 "$icon_src/radview.svg" "$icons/scalable/apps/radview.svg"
for s in $sizes; do
  mkdir -p "$icons/${s}x${s}/apps"
  install -m 644 "$icon_src/radview-$s.png" "$icons/${s}x${s}/apps/radview.png"
done
refresh_caches

echo "radview installed into $prefix"
case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) echo "note: $prefix/bin is not on PATH; the menu entry works anyway ($desktop)" ;;
esac
