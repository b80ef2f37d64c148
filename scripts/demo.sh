#!/usr/bin/env bash
# A guided tour of dvfs on generated sample data, in a fresh temporary directory.
# Every command is printed before it runs.
set -euo pipefail

demo=$(mktemp -d -t dvfs-demo-XXXXXX)
mnt="$demo/mnt"
cleanup() {
    if mountpoint -q "$mnt" 2>/dev/null; then dvfs umount --force "$mnt" || true; fi
    rm -rf "$demo"
}
trap cleanup EXIT
mkdir "$demo/repo" "$mnt"
cd "$demo/repo"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "Generate sample data: 200 CSV files and one 20 MiB binary"
mkdir -p data/csv
for i in $(seq 1 200); do
    printf 'id,value\n' > "data/csv/part-$i.csv"
    seq "$i" $((i + 5)) | awk '{print NR "," $1 * 3}' >> "data/csv/part-$i.csv"
done
head -c 20971520 /dev/urandom > data/model.bin
run du -sh data

step "Create a repository and record the first version"
run dvfs init
run dvfs add data
run dvfs status
run dvfs commit -m "raw data" --param source=sensor-a --tag raw

step "Change a little: edit one CSV, overwrite 64 KiB inside the binary, add a file"
echo "999,2997" >> data/csv/part-7.csv
dd if=/dev/urandom of=data/model.bin bs=64K count=1 seek=100 conv=notrunc status=none
echo "id,label" > data/csv/labels.csv
run dvfs status
run dvfs add data
run dvfs commit -m "cleaned data" --param threshold=0.8

step "Only the changed chunks were stored"
run du -sh .dvfs/objects
run dvfs diff v1 v2

step "History and any version, without checking it out"
run dvfs log
run dvfs show v2 --format yaml
run dvfs ls v1:data
run dvfs cat v1:data/csv/part-7.csv

step "Go back to v1, then return to the branch"
run dvfs checkout v1
run dvfs status
run dvfs switch main

step "Mount the repository: every version is a read-only directory"
run dvfs mount . "$mnt" --cache-dir "$demo/cache"
run ls "$mnt"
run ls "$mnt/.versions"
run ls "$mnt/.versions/tags"
run diff -r "$mnt/.versions/v1/data/csv" "$mnt/.versions/v2/data/csv" || true
run cat "$mnt/.versions/tags/raw/data/csv/part-7.csv"
run cmp "$mnt/.versions/latest/data/model.bin" data/model.bin
run dvfs mounts

step "The mounted branch is a writable working tree: change it, then snapshot it"
printf 'id,label\n1,cat\n2,dog\n' > "$mnt/data/csv/labels.csv"
printf '$ %s\n' "printf 'id,label\\n1,cat\\n2,dog\\n' > $mnt/data/csv/labels.csv"
run mkdir "$mnt/data/models"
run cp "$mnt/data/model.bin" "$mnt/data/models/model-v3.bin"
run rm "$mnt/data/csv/part-1.csv"
run mv "$mnt/data/csv/part-2.csv" "$mnt/data/csv/part-2-renamed.csv"
run dvfs status "$mnt"
run dvfs snapshot "$mnt" -m "labels and a model copy" --param epochs=3 --tag labelled
run ls "$mnt/.versions"
run diff -r "$mnt/.versions/v2/data/csv" "$mnt/.versions/v3/data/csv" || true
run dvfs umount "$mnt"
run dvfs log -n 2
run dvfs ls v3:data/models

step "Verify every object"
run dvfs fsck

printf '\nDemo finished; it ran in %s (now removed).\n' "$demo"
