package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 100

// cpuTime returns the user+system CPU time used so far by process pid (0 =
// this process), from /proc/PID/stat (utime and stime, fields 14 and 15).
func cpuTime(pid int) (time.Duration, error) {
	p := "/proc/self/stat"
	if pid > 0 {
		p = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: fields
	// are counted from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: unexpected format", p)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: unexpected format", p)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: unexpected format", p)
	}
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

// memKB returns VmRSS and VmHWM (peak RSS) of pid in KiB.
func memKB(pid int) (rss, hwm int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm
}

// loadAvg returns the 1-minute load average as written in /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cpuMeter measures one process's CPU use over an interval.
type cpuMeter struct {
	pid   int
	cpu0  time.Duration
	wall0 time.Time
}

func startCPU(pid int) cpuMeter {
	c, _ := cpuTime(pid)
	return cpuMeter{pid: pid, cpu0: c, wall0: time.Now()}
}

// stop returns CPU time used since start and that as % of one core.
func (m cpuMeter) stop() (time.Duration, float64) {
	c, err := cpuTime(m.pid)
	if err != nil {
		return 0, 0
	}
	used := c - m.cpu0
	wall := time.Since(m.wall0)
	if wall <= 0 {
		return used, 0
	}
	return used, 100 * used.Seconds() / wall.Seconds()
}

// machineCPU returns the busy and total CPU time of the whole machine so
// far (all cores), from the first line of /proc/stat.
func machineCPU() (busy, total time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0
	}
	var sum, idle int64
	for i, s := range f[1:] {
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		v, _ := strconv.ParseInt(s, 10, 64)
		sum += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return time.Duration(sum-idle) * time.Second / clockTick, time.Duration(sum) * time.Second / clockTick
}

// machineMeter measures the whole machine's CPU use over an interval.
type machineMeter struct {
	busy0 time.Duration
	wall0 time.Time
}

func startMachine() machineMeter {
	b, _ := machineCPU()
	return machineMeter{busy0: b, wall0: time.Now()}
}

// stop returns the machine's busy CPU time since start.
func (m machineMeter) stop() time.Duration {
	b, _ := machineCPU()
	return b - m.busy0
}

// waitIdle waits up to limit until the machine is at least 85 % idle over
// a 3-second window; it returns the idle share last seen.
func waitIdle(limit time.Duration) (idle float64, waited time.Duration, ok bool) {
	start := time.Now()
	for {
		b0, t0 := machineCPU()
		time.Sleep(3 * time.Second)
		b1, t1 := machineCPU()
		if t1 > t0 {
			idle = 1 - float64(b1-b0)/float64(t1-t0)
		}
		if idle >= 0.85 {
			return idle, time.Since(start), true
		}
		if time.Since(start) >= limit {
			return idle, time.Since(start), false
		}
	}
}
