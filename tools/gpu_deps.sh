#!/bin/sh
# Prepares .deps/root for a GPU machine that has CUDA (nvcc, cuBLAS, NCCL) but no package registry:
# Debian's .deb files of OpenBLAS, MPICH, HDF5, cJSON, libyaml and pkgconf, with the libraries they need
# at run time, downloaded here (where apt works) and unpacked with dpkg -x. tools/gpu_check.sh builds
# against that folder when the machine lacks the -dev packages; .deps is ignored by git and travels with
# the checkout where it is carried.
#
#   tools/gpu_deps.sh            # writes .deps/ (about 30 MiB: shared libraries, stripped)
set -eu
cd "$(dirname "$0")/.."
out="$PWD/.deps"
wanted="libopenblas0-openmp libopenblas-openmp-dev libmpich12 libmpich-dev mpich libhdf5-103-1 libhdf5-hl-100
        libhdf5-dev libcjson1 libcjson-dev libyaml-0-2 libyaml-dev pkgconf pkgconf-bin libpkgconf3"

command -v apt-get >/dev/null || { echo "gpu_deps.sh: needs apt-get (run it on a Debian machine)" >&2; exit 1; }
[ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null

# Every package they need at run time, minus what any Debian or Ubuntu system with a compiler has (the C
# library, the compilers and their runtimes, perl, fonts, X) and the -dev packages of their own
# dependencies (headers hft does not include).
closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
            --no-enhances --no-pre-depends $wanted | grep -E '^[a-z0-9]' | sort -u)
keep=""
for p in $closure; do
    case " $(echo $wanted) " in *" $p "*) keep="$keep $p"; continue ;; esac
    case "$p" in
    libc6 | libc6-dev | libc-dev-bin | libgcc* | libstdc++* | gcc* | g++* | cpp* | gfortran* | flang* | *llvm* | \
    *clang* | libmlir* | libasan* | liblsan* | libtsan* | libubsan* | libitm* | libatomic* | libquadmath0 | \
    libgomp1 | libcc1* | libisl* | libmpc* | libmpfr* | libgmp* | binutils* | libbinutils | libctf* | \
    libgprofng* | perl* | libperl* | fonts-* | ttf-* | x11-* | libx* | xfonts-* | libfont* | libfreetype* | \
    libcairo* | libpixman* | libpng* | fontconfig* | debconf | cdebconf | dpkg | adduser | passwd | tar | \
    debianutils | install-info | lsb-base | sysvinit-utils | readline-common | libreadline* | libtinfo* | \
    libpam* | libselinux* | libsemanage* | libsepol* | libaudit* | libcap-ng* | libcrypt* | libzstd1 | \
    liblzma5 | libbz2-1.0 | zlib1g | libdb5.3 | libgdbm* | libdebian* | libnewt* | libslang* | libtextwrap* | \
    autoconf | automake | autotools-dev | m4 | libltdl* | *-dev | hwloc | hdf5-helpers | linux-libc-dev | \
    rpcsvc-proto | libnsl* | libtirpc* | libmd0 | libbsd0 | libexpat1 | libffi8 | libedit2 | libz3-4 | \
    libjansson4 | libicu* | libxml2 | libsqlite3-0 | libudev1 | libunistring2 | libidn2-0 | libp11-kit0 | \
    libtasn1-6 | libgnutls30 | libnettle8 | libhogweed6 | libssl3 | libcom-err2 | libkeyutils1 | \
    libkrb5* | libk5crypto3 | libgssapi-krb5-2 | libcurl3-* | libnss3 | libnspr4 | nss-plugin-pem | \
    libjpeg* | libslurm* | libpcre2-8-0 | libhdf5-cpp* | libhdf5-*fortran* | libhdf5-hl-cpp*) ;;
    *) keep="$keep $p" ;;
    esac
done

rm -rf "$out"
mkdir -p "$out/debs" "$out/root"
(cd "$out/debs" && apt-get download $keep >/dev/null)
for deb in "$out"/debs/*.deb; do
    dpkg -x "$deb" "$out/root"
done
rm -rf "$out/root/usr/share/doc" "$out/root/usr/share/man" "$out/root/usr/share/lintian" "$out/debs"
# What travels to the GPU machine must be small (the device tool carries 64 MiB): shared libraries only,
# without their symbol tables.
find "$out/root" -name '*.a' -delete
find "$out/root" -name '*.so*' -type f -exec strip --strip-unneeded {} + 2>/dev/null || true
# mpirun and mpiexec are alternatives links that dpkg -x does not make
ln -sf mpiexec.hydra "$out/root/usr/bin/mpirun"
ln -sf mpiexec.hydra "$out/root/usr/bin/mpiexec"
# Debian's alternatives link libblas/liblapack and the generic mpicc through /etc/alternatives, which
# dpkg -x does not create; hft links OpenBLAS from its own folder and MPI through the hints below.
echo "$keep" | tr ' ' '\n' | grep . >"$out/packages.txt"
# One compressed file to carry (tools/gpu_check.sh unpacks it where .deps/root is missing).
tar -C "$out" -cJf "$out/root.tar.xz" root
echo "gpu_deps.sh: $(wc -l <"$out/packages.txt") packages unpacked into $out/root ($(du -sh "$out/root" | cut -f1)); to carry: $out/root.tar.xz ($(du -sh "$out/root.tar.xz" | cut -f1))"
