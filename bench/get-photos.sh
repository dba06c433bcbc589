#!/usr/bin/env bash
# get-photos.sh DIR: lay out the benchmark's photo corpus in DIR (default bench/.photos).
#
# Every picture comes from a Debian 12 package (no other download): real photographs from the
# wallpaper packages below, copied as shipped, plus a few files derived from them locally so the
# corpus also has PNG, WebP and a large progressive JPEG (no Debian package ships a photograph as
# WebP: gnome-backgrounds' WebP files are drawn art). 38 images, 1.3 to 24 MP, about 60 MB.
#
#   lomiri-wallpapers-16.04  Ubuntu wallpaper-contest photographs, 1.5-15.9 MP, mostly progressive
#   lomiri-wallpapers-20.04  two large photographs (16.8 and 20.4 MP) and one 24 MP drawn JPEG
#   mate-backgrounds         nature photographs, 1.3-4.9 MP, baseline and progressive
#   plasma-workspace-wallpapers  KDE photographs, 4.1 MP
#   libjpeg-turbo-progs      jpegtran, for a lossless progressive copy of the 20 MP photograph
#   libvips-tools            vips, to derive the PNG and WebP files
#
# Idempotent: packages already installed are not installed again, files already in DIR are kept.
# Needs root (apt-get) only the first time. Prints one summary line per image at the end.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${1:-$here/.photos}

packages=(lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 mate-backgrounds
          plasma-workspace-wallpapers libjpeg-turbo-progs libvips-tools)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "get-photos: installing ${missing[*]}" >&2
    if [[ $(id -u) -ne 0 ]]; then
        echo "get-photos: need root to apt-get install ${missing[*]}" >&2
        exit 1
    fi
    # The lists may be stale or absent on a fresh machine.
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update >/dev/null
        apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
    }
fi

bg=/usr/share/backgrounds
kde=/usr/share/wallpapers

# name-in-corpus  source-file  (names must be unique without their extension: every contender
# writes OUT/<size>/<name>.jpg)
copies=(
    # lomiri-wallpapers-16.04 (photographs; P = progressive, B = baseline)
    "Bridge.jpg             $bg/Bridge_by_Sander_Klootwijk.jpg"        # 4352x2448 P
    "Dragonfly.jpg          $bg/Dragonfly_by_Bolly.jpg"                # 4224x3168 P
    "Fig.jpg                $bg/Picture_0B_by_freespace.jpg"           # 2572x1740 P
    "Brushes.jpg            $bg/Picture_1A_by_freespace.jpg"           # 1365x1074 P
    "Wine.jpg               $bg/Wine_by_Jakkub_Mede.jpg"               # 2560x3837 P portrait
    "Aitzgorri.jpg          $bg/aitzgorri_by_Aitzol_Berasategi.jpg"    # 3088x2056 P
    "AnalogPattern.jpg      $bg/analogpattern_by_Peter_Nerlich.jpg"    # 2880x2160 B
    "Free.jpg               $bg/free_by_Peter_Nerlich.jpg"             # 2880x2160 B
    "Friends.jpg            $bg/friends_by_Aitzol_Berasategi.jpg"      # 2056x3088 P portrait
    "Greentock.jpg          $bg/greentock_by_Peter_Nerlich.jpg"        # 2880x2160 P
    "Life.jpg               $bg/life_by_Aitzol_Berasategi.jpg"         # 3088x2056 P
    "PicosDeEuropa.jpg      $bg/picosdeeuropa_by_Aitzol_Berasategi.jpg" # 3264x2448 P
    "Seeding.jpg            $bg/seeding_by_Clements_Engelhardt.jpg"    # 5312x2988 P
    "Sunset.jpg             $bg/sunset_by_Aitzol_Berasategi.jpg"       # 4272x2848 P
    # lomiri-wallpapers-20.04
    "Kleiber.jpg            $bg/Kleiber_by_Lukas_Baubkus.jpg"          # 6028x3391 B (20.4 MP)
    "InfiniteSea.jpg        $bg/Infinite-Sea_by_Aury88.jpg"            # 4096x4096 P (16.8 MP)
    "PaintingColors.jpg     $bg/Painting-Colors_by__herobrine7gamer.jpg" # 6000x4000 B (24 MP, drawn)
    # mate-backgrounds (nature photographs)
    "Aqua.jpg               $bg/mate/nature/Aqua.jpg"                  # 2560x1600 B
    "Blinds.jpg             $bg/mate/nature/Blinds.jpg"                # 1920x1200 B
    "Dune.jpg               $bg/mate/nature/Dune.jpg"                  # 1680x1050 B
    "FreshFlower.jpg        $bg/mate/nature/FreshFlower.jpg"           # 1600x1203 P
    "GreenMeadow.jpg        $bg/mate/nature/GreenMeadow.jpg"           # 1280x1024 P
    "RainDrops.jpg          $bg/mate/nature/RainDrops.jpg"             # 1920x1200 B
    "Storm.jpg              $bg/mate/nature/Storm.jpg"                 # 1920x1280 B
    "TwoWings.jpg           $bg/mate/nature/TwoWings.jpg"              # 2560x1600 B
    "Wood.jpg               $bg/mate/nature/Wood.jpg"                  # 2560x1920 B
    # plasma-workspace-wallpapers (photographs)
    "ColorfulCups.jpg       $kde/ColorfulCups/contents/images/2560x1600.jpg" # P
    "EveningGlow.jpg        $kde/EveningGlow/contents/images/2560x1600.jpg"  # B
    "FallenLeaf.jpg         $kde/FallenLeaf/contents/images/2560x1600.jpg"   # B
    "Path.jpg               $kde/Path/contents/images/2560x1600.jpg"         # B
    "Summer1am.jpg          $kde/summer_1am/contents/images/2560x1600.jpg"   # P
    # PNG as shipped (drawn art; 8.3 MP RGB)
    "Canopee.png            $kde/Canopee/contents/images/3840x2160.png"
)

# name  source  how: derived locally from photographs of the packages above
derived=(
    "Kleiber-progressive.jpg $bg/Kleiber_by_Lukas_Baubkus.jpg       jpegtran" # lossless, 20.4 MP P
    "LadyBird.png            $bg/mate/nature/LadyBird.jpg           vips"     # 2560x1600 PNG
    "OneStandsOut.png        $kde/OneStandsOut/contents/images/2560x1600.jpg vips" # PNG
    "Garden.webp             $bg/mate/nature/Garden.jpg             vips"     # WebP Q=85
    "DarkestHour.webp        $kde/DarkestHour/contents/images/2560x1600.jpg  vips" # WebP Q=85
    "YellowFlower.webp       $bg/mate/nature/YellowFlower.jpg       vips"     # WebP Q=85
)

mkdir -p "$dir"

for entry in "${copies[@]}"; do
    read -r name src <<<"$entry"
    [[ -s $dir/$name ]] && continue
    cp -L "$src" "$dir/$name.tmp" && mv "$dir/$name.tmp" "$dir/$name"
done

for entry in "${derived[@]}"; do
    read -r name src how <<<"$entry"
    [[ -s $dir/$name ]] && continue
    tmp=$dir/.tmp-$name
    case $how in
    jpegtran) jpegtran -copy all -progressive -optimize -outfile "$tmp" "$src" ;;
    vips)
        case $name in
        *.png) vips copy "$src" "$tmp.png[compression=6]" && mv "$tmp.png" "$tmp" ;;
        *.webp) vips copy "$src" "$tmp.webp[Q=85]" && mv "$tmp.webp" "$tmp" ;;
        esac ;;
    esac
    mv "$tmp" "$dir/$name"
done

# Anything else in DIR (an older corpus) is left alone but warned about: the benchmark takes
# every image in DIR.
expected=$(( ${#copies[@]} + ${#derived[@]} ))
have=$(find "$dir" -maxdepth 1 -type f \( -name '*.jpg' -o -name '*.png' -o -name '*.webp' \) | wc -l)
if [[ $have -ne $expected ]]; then
    echo "get-photos: $dir has $have images, expected $expected (extra files are benchmarked too)" >&2
fi
echo "get-photos: $have images in $dir ($(du -sh "$dir" | cut -f1))" >&2
