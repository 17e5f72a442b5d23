#!/usr/bin/env bash
# Run a command with the site's SLURM settings: export the variables of launch/site.env (or of
# the file named by NASHEUR_SITE_ENV), drop those left empty (unset means "the default"),
# then run the command. The make targets use it:
#
#   launch/with_site_env.sh python -m nasheur -m hydra/launcher=slurm seed=0,1,2 ...
#
# A NASHEUR_* variable already set (not empty) in the calling environment wins over the file,
# so that one run can change one value: NASHEUR_SLURM_TIME_MIN=60 make sweep ARGS=...
# An empty one says nothing: the file's value holds.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
file=${NASHEUR_SITE_ENV:-$here/site.env}
if [[ -f $file ]]; then
    # remember what the caller set, read the file, then put the caller's values back
    # (by name, not by parsing `env`: a value may end in "=" or hold a newline)
    declare -A caller=()
    for name in $(compgen -e); do
        if [[ $name == NASHEUR_* && -n ${!name} ]]; then
            caller[$name]=${!name}
        fi
    done
    set -a
    # shellcheck disable=SC1090
    . "$file"
    set +a
    for name in "${!caller[@]}"; do
        export "$name=${caller[$name]}"
    done
elif [[ -n ${NASHEUR_SITE_ENV:-} ]]; then
    echo "with_site_env: $file: no such file" >&2
    exit 2
fi
for name in $(compgen -e); do
    # every NASHEUR_* variable left empty (SLURM options, NASHEUR_DATA, NASHEUR_GT_*) takes
    # its default, as site.env.example says
    if [[ $name == NASHEUR_* && -z ${!name} ]]; then
        unset "$name"
    fi
done
exec "$@"
