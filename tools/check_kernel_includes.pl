#!/usr/bin/perl
# check_kernel_includes.pl FILE...: kernels/ is built with -Iinclude only (the Makefile runs this
# before it compiles or archives a kernel). Every quoted #include of a file under kernels/ must
# resolve beside the file (a relative path that stays under kernels/) or under include/ (the
# public headers: sqakd/common.h, rng.h, backend.h, quant_math.h, ...); kernels/lab/ may also
# use the tests' helpers under tests/. Never host/. One line per offending include, exit 1.
use strict;
use warnings;
use Cwd qw(abs_path getcwd);
use File::Basename qw(dirname);

my $root = getcwd();
my $bad = 0;
for my $f (@ARGV) {
    open my $in, '<', $f or die "check_kernel_includes.pl: cannot read $f: $!\n";
    my $lab = $f =~ m{^kernels/lab/};
    my @ok = ('kernels/', 'include/', $lab ? ('tests/') : ());
    my $n = 0;
    while (my $line = <$in>) {
        $n++;
        next unless $line =~ /^\s*#\s*include\s+"([^"]+)"/;
        my $inc = $1;
        my $res;
        for my $cand (dirname($f) . "/$inc", "include/$inc", $lab ? ("tests/$inc") : ()) {
            if (-f $cand) {
                $res = abs_path($cand);
                last;
            }
        }
        my $why;
        if (!defined $res) {
            $why = "which resolves neither beside it nor under " . join(' or ', grep { $_ ne 'kernels/' } @ok);
        } else {
            my $rel = index($res, "$root/") == 0 ? substr($res, length($root) + 1) : $res;
            $why = "which is $rel, outside " . join(', ', @ok) unless grep { index($rel, $_) == 0 } @ok;
        }
        next unless $why;
        print STDERR "kernels include check: $f:$n includes \"$inc\", $why "
            . "(kernels/ sees include/ and its own files, never host/)\n";
        $bad++;
    }
    close $in;
}
exit($bad ? 1 : 0);
