# Sourced by the appliance's scripts (console, rc-media, shutdown): where things are on the
# image, and small helpers.
export PATH=/usr/sbin:/usr/bin
export HOME=/root
export LC_ALL=C

# The image: its manifest (whose SHA-256 is the image's identity shown on the console), the
# ceremony scripts and the TUF repository policy it was built with.
export ROOTCELLAR_IMAGE_MANIFEST=/usr/share/rootcellar/manifest.txt
export ROOTCELLAR_CEREMONY_DIR=/usr/share/rootcellar/ceremony
export ROOTCELLAR_TUF_POLICY=/usr/share/rootcellar/tuf-repo/policy.toml
# PKCS#11 modules: SoftHSM2 for rehearsals, OpenSC for smart-card tokens.
export ROOTCELLAR_SOFTHSM2_MODULE=/usr/lib/softhsm/libsofthsm2.so
export ROOTCELLAR_OPENSC_MODULE=/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so
# Working state lives in RAM and is gone at power-off.
export ROOTCELLAR_RUN_DIR=/run/rootcellar
# The sneakernet disk: found by this filesystem label, mounted here by rc-media only while a
# step reads or writes it.
export ROOTCELLAR_MEDIA_LABEL=RCSNEAKER
export ROOTCELLAR_MEDIA_DIR=/media/sneaker
# The operator's state disk (journal, ceremony progress, rehearsal tokens): mounted here by the
# console for as long as it runs, when a disk with this label is present.
export ROOTCELLAR_STATE_LABEL=RCSTATE
export ROOTCELLAR_STATE_MEDIA_DIR=/media/state

say() { printf '%s\n' "$*"; }

# True when the kernel command line asks for a debug boot (rootcellar.debug=1).
debug_boot() {
  read -r cmdline < /proc/cmdline
  case " $cmdline " in
    *" rootcellar.debug=1 "*) return 0 ;;
  esac
  return 1
}
