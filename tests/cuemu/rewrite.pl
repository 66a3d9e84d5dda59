#!/usr/bin/perl
# rewrite.pl: turns the CUDA launches of a .cu file into plain C++ calls for cuemu
# (tests/cuemu/cuemu.h): `kernel<T, U><<<grid, block[, shmem, stream]>>>(args)` becomes
# `cuemu::Launch("kernel<T, U>", grid, block[, shmem, stream]).run(kernel<T, U>, args)`.
# A launch's `<<<...>>>(` must sit on one line (true of every launch in kernels/cuda).
# Usage: rewrite.pl in.cu > out.cc ; the #line directive keeps diagnostics on the .cu file.
use strict;
use warnings;
my $file = $ARGV[0] or die "usage: rewrite.pl FILE.cu\n";
open my $in, '<', $file or die "rewrite.pl: cannot read $file: $!\n";
print "#line 1 \"$file\"\n";
my $n = 0;
while (my $line = <$in>) {
    $n++;
    $line =~ s{([A-Za-z_]\w*(?:\s*<[^<>;()]*>)?)\s*<<<(.*?)>>>\s*\(\s*(\)?)}{
        my ($k, $cfg, $empty) = ($1, $2, $3);
        "cuemu::Launch(\"$k\", $cfg).run($k" . ($empty ? ")" : ", ")
    }ge;
    die "rewrite.pl: $file:$n: a launch this script cannot parse\n" if $line =~ /<<<|>>>/;
    print $line;
}
