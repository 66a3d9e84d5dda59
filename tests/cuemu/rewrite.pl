#!/usr/bin/perl
# rewrite.pl: turns the CUDA launches of a .cu file into plain C++ calls for cuemu
# (tests/cuemu/cuemu.h): `kernel<T, U><<<grid, block[, shmem, stream]>>>(args)` becomes
# `cuemu::Launch("kernel<T, U>", grid, block[, shmem, stream]).run(kernel<T, U>, args)`.
# A launch's `<<<...>>>(` must sit on one line (true of every launch in kernels/cuda).
# The output lands in the build tree, away from the .cu file, so a quoted #include that resolves
# beside the file becomes an include of its absolute path, and an included .cu file (kernels/lab
# compiles kernels/cuda's .cu files again) is inlined, rewritten the same way.
# Usage: rewrite.pl in.cu > out.cc ; #line directives keep diagnostics on the .cu files.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Spec;
my $file = $ARGV[0] or die "usage: rewrite.pl FILE.cu\n";
my %inlined;

sub rewrite {
    my ($path, $depth) = @_;
    die "rewrite.pl: $path: .cu includes nested too deep\n" if $depth > 8;
    open my $in, '<', $path or die "rewrite.pl: cannot read $path: $!\n";
    my $dir = dirname($path);
    print "#line 1 \"$path\"\n";
    my $n = 0;
    while (my $line = <$in>) {
        $n++;
        if ($line =~ /^\s*#\s*include\s+"([^"]+)"/ && -f "$dir/$1") {
            my $target = abs_path("$dir/$1");
            if ($target =~ /\.cu$/) {
                die "rewrite.pl: $path:$n: $1 is included twice\n" if $inlined{$target}++;
                rewrite(File::Spec->abs2rel($target), $depth + 1);
                print "#line " . ($n + 1) . " \"$path\"\n";
            } else {
                print "#include \"$target\"\n";
            }
            next;
        }
        $line =~ s{([A-Za-z_]\w*(?:\s*<[^<>;()]*>)?)\s*<<<(.*?)>>>\s*\(\s*(\)?)}{
            my ($k, $cfg, $empty) = ($1, $2, $3);
            "cuemu::Launch(\"$k\", $cfg).run($k" . ($empty ? ")" : ", ")
        }ge;
        die "rewrite.pl: $path:$n: a launch this script cannot parse\n" if $line =~ /<<<|>>>/;
        print $line;
    }
    close $in;
}

rewrite($file, 0);
