<#
.SYNOPSIS
  The windows workflow's end-to-end test of windows\install.ps1 and
  uninstall.ps1 on a real Windows (SCM, firewall, ACLs, LSA rights), one
  stage per workflow step. Runs elevated; never on a workstation you use.

.DESCRIPTION
  checkout  C:\tp-checkout: tests\gpuhost\tokenplace\server.py (token.place's
            command line), a venv, a requirements file with token.place's
            llama_cpp_python pin plus one small package, and a stand-in for
            an installed GPU build of the pinned llama_cpp_python (a real
            one would need Build Tools + CUDA; pip must not touch it)
  install   install.ps1 (LocalSystem): keeps the stand-in, installs the
            rest, prints its GPU offload answer; the service answers /health,
            gpuhost.ini's ACL, the token in no output or log, one firewall rule
  refuse    the pin moves while a GPU build is installed: install.ps1 exits 1
            having changed nothing, the service still running
  upgrade   install.ps1 again: a new service process, gpuhost.ini unchanged,
            still one firewall rule
  purge     stop within the grace period; uninstall.ps1 -Purge leaves no
            service, firewall rule, Event Log source, install folder or
            data directory
  user      -Account User with a fresh local account: the "Log on as a
            service" right granted (read back with secedit, not with the
            scripts' own code) and the access grants; uninstall.ps1 -Purge
            revokes both
#>
param(
    [Parameter(Mandatory = $true)]
    [ValidateSet("checkout", "install", "refuse", "upgrade", "purge", "user")]
    [string]$Stage,
    [string]$Exe = $env:GPUHOST_EXE
)
$ErrorActionPreference = "Stop"

$repo = Resolve-Path (Join-Path $PSScriptRoot "..\..")
$ck = "C:\tp-checkout"
$installDir = Join-Path $env:ProgramFiles "tokenplace-gpuhost"
$gh = Join-Path $installDir "tokenplace-gpuhost.exe"
$ini = Join-Path $installDir "gpuhost.ini"
$dataDir = Join-Path $env:ProgramData "tokenplace\data"
$service = "tokenplace-gpuhost"
$token = "ci-relay-token"
$standin = "$ck\.venv\Lib\site-packages\llama_cpp\__init__.py"
$installArgs = @("-Checkout", $ck, "-Port", "8000", "-Exe", $Exe, "-RelayUrl", "http://127.0.0.1:5010",
    "-RelayToken", $token, "-NoPrompt")

function Assert([bool]$ok, [string]$what) {
    if (-not $ok) { throw "FAILED: $what" }
    Write-Host "ok: $what"
}

# A script in its own Windows PowerShell, as an operator runs it; returns its exit status and output.
function Invoke-Script([string]$script, [string[]]$arguments) {
    $out = Join-Path $env:RUNNER_TEMP "script.out"
    $err = Join-Path $env:RUNNER_TEMP "script.err"
    $quoted = @($arguments | ForEach-Object { if ($_ -match '\s') { "`"$_`"" } else { $_ } })
    $p = Start-Process -FilePath powershell.exe -PassThru -NoNewWindow `
        -RedirectStandardOutput $out -RedirectStandardError $err `
        -ArgumentList (@("-NoProfile", "-ExecutionPolicy", "Bypass", "-File", (Join-Path $repo "windows\$script")) + $quoted)
    # Reading Handle before the exit keeps ExitCode available afterwards.
    $null = $p.Handle
    $p.WaitForExit()
    $text = (Get-Content -Raw $out) + (Get-Content -Raw $err)
    Write-Host "---- $script $($arguments -join ' ') (exit status $($p.ExitCode))"
    Write-Host $text
    Write-Host "----"
    return @{ rc = $p.ExitCode; text = $text }
}

function Wait-Health {
    $deadline = (Get-Date).AddSeconds(90)
    while ((Get-Date) -lt $deadline) {
        try {
            $r = Invoke-WebRequest -UseBasicParsing -TimeoutSec 5 http://127.0.0.1:8000/health
            if ($r.StatusCode -eq 200) { return $r.Content }
        } catch { Start-Sleep -Milliseconds 500 }
    }
    throw "FAILED: /health did not answer on port 8000 within 90 s"
}

function Get-GpuhostRules {
    @(Get-NetFirewallRule -Group "tokenplace-gpuhost" -ErrorAction SilentlyContinue)
}

function Get-ServicePid {
    (Get-CimInstance Win32_Service -Filter "Name='$service'").ProcessId
}

# SeServiceLogonRight holders as secedit exports them (*SID entries).
function Test-LogonRight([string]$sid) {
    $inf = Join-Path $env:RUNNER_TEMP "rights.inf"
    secedit /export /areas USER_RIGHTS /cfg $inf | Out-Null
    $line = Get-Content $inf | Where-Object { $_ -match '^SeServiceLogonRight\s*=' }
    if (-not $line) { return $false }
    $holders = ($line -split '=', 2)[1] -split ',' | ForEach-Object { $_.Trim() }
    return $holders -contains "*$sid"
}

function Get-AclSids([string]$path) {
    (Get-Acl $path).GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier]) |
        ForEach-Object { $_.IdentityReference.Value }
}

function Get-VenvHome {
    ((Get-Content "$ck\.venv\pyvenv.cfg" | Where-Object { $_ -match '^\s*home\s*=' }) -replace '^\s*home\s*=\s*', '').Trim()
}

function Assert-NothingLeft {
    $deadline = (Get-Date).AddSeconds(30)
    while ((Get-Service -Name $service -ErrorAction SilentlyContinue) -and (Get-Date) -lt $deadline) { Start-Sleep -Milliseconds 500 }
    Assert (-not (Get-Service -Name $service -ErrorAction SilentlyContinue)) "service $service removed"
    Assert ((Get-GpuhostRules).Count -eq 0) "no firewall rule in group tokenplace-gpuhost"
    Assert (-not [System.Diagnostics.EventLog]::SourceExists($service)) "Event Log source $service removed"
    Assert (-not (Test-Path $installDir)) "$installDir deleted"
    Assert (-not (Test-Path $dataDir)) "$dataDir deleted"
    Assert (-not (Test-Path (Split-Path -Parent $dataDir))) "$(Split-Path -Parent $dataDir) deleted"
}

switch ($Stage) {
    "checkout" {
        New-Item -ItemType Directory -Force "$ck\config" | Out-Null
        Copy-Item (Join-Path $repo "tests\gpuhost\tokenplace\server.py") "$ck\server.py"
        python -m venv "$ck\.venv"
        if ($LASTEXITCODE -ne 0) { throw "venv creation failed" }
        Get-Content "$ck\.venv\pyvenv.cfg"
        "llama_cpp_python==0.3.16`r`ncolorama==0.4.6`r`n" | Set-Content -Encoding ascii "$ck\config\requirements_server.txt"
        $sp = "$ck\.venv\Lib\site-packages"
        New-Item -ItemType Directory -Force "$sp\llama_cpp", "$sp\llama_cpp_python-0.3.16.dist-info" | Out-Null
        "# stand-in for a CUDA build`r`ndef llama_supports_gpu_offload():`r`n    return True`r`n" |
            Set-Content -Encoding ascii $standin
        "Metadata-Version: 2.1`r`nName: llama_cpp_python`r`nVersion: 0.3.16`r`n" |
            Set-Content -Encoding ascii "$sp\llama_cpp_python-0.3.16.dist-info\METADATA"
    }
    "install" {
        $r = Invoke-Script "install.ps1" $installArgs
        Assert ($r.rc -eq 0) "install.ps1 exit status 0"
        Assert ($r.text -match 'keeping the installed llama_cpp_python 0\.3\.16') "the pinned llama_cpp_python kept"
        Assert ($r.text -match 'installed: llama_cpp_python 0\.3\.16 at ' -and $r.text -match 'GPU offload: True') "installed build and GPU offload printed"
        Assert ((Get-Content -Raw $standin) -match 'stand-in for a CUDA build') "the stand-in build untouched"
        & "$ck\.venv\Scripts\python.exe" -c "import colorama"
        Assert ($LASTEXITCODE -eq 0) "the rest of the requirements installed"
        Write-Host (Wait-Health)
        & $gh status
        Assert ($LASTEXITCODE -eq 0) "status says running"
        & $gh check --json --only firewall
        & $gh check --only args
        Assert ($LASTEXITCODE -eq 0) "args check passes"
        $acl = Get-Acl $ini
        $acl.Access | Format-Table -Property @("IdentityReference", "FileSystemRights")
        Assert (-not ($acl.Access | Where-Object { $_.IdentityReference -match 'Users|Everyone' })) "gpuhost.ini not readable by users"
        Assert (-not ((& $gh config | Out-String) -match $token)) "config does not print the token"
        Get-ChildItem (Join-Path $installDir "logs") | ForEach-Object {
            Assert (-not (Select-String -Quiet -Path $_.FullName -Pattern $token)) "token not in $($_.Name)"
        }
        Assert ((Get-GpuhostRules).Count -eq 1) "one firewall rule"
        Assert (Test-Path (Join-Path $installDir "install-state.json")) "install-state.json written"
        Assert (Test-Path (Join-Path $installDir "uninstall.ps1")) "uninstall.ps1 copied"
        Get-EventLog -LogName Application -Source $service -Newest 5 -ErrorAction SilentlyContinue | Format-List
        sc.exe qfailure $service
        sc.exe qc $service
    }
    "refuse" {
        $req = "$ck\config\requirements_server.txt"
        $saved = Get-Content -Raw $req
        $servicePid = Get-ServicePid
        (Get-Content -Raw $req) -replace '0\.3\.16', '0.3.17' | Set-Content -Encoding ascii $req
        try {
            $r = Invoke-Script "install.ps1" $installArgs
        } finally {
            $saved | Set-Content -Encoding ascii -NoNewline $req
        }
        Assert ($r.rc -eq 1) "install.ps1 refuses (exit status 1)"
        Assert ($r.text -match 'is a GPU build' -and $r.text -match 'Nothing was changed') "the refusal names the GPU build"
        Assert ((Get-Content -Raw $standin) -match 'stand-in for a CUDA build') "the stand-in build untouched"
        Assert ((Get-Service $service).Status -eq "Running" -and (Get-ServicePid) -eq $servicePid) "the service kept running"
    }
    "upgrade" {
        $iniHash = (Get-FileHash $ini).Hash
        $servicePid = Get-ServicePid
        $r = Invoke-Script "install.ps1" $installArgs
        Assert ($r.rc -eq 0) "install.ps1 again (upgrade) exit status 0"
        Assert ($r.text -match "upgrading $service in place") "it upgraded in place"
        Assert ($r.text -match 'keeping existing') "it kept gpuhost.ini"
        Assert ((Get-FileHash $ini).Hash -eq $iniHash) "gpuhost.ini unchanged"
        Write-Host (Wait-Health)
        Assert ((Get-Service $service).Status -eq "Running") "service running"
        Assert ((Get-ServicePid) -ne $servicePid) "a new service process"
        Assert ((Get-GpuhostRules).Count -eq 1) "still one firewall rule"
    }
    "purge" {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        & $gh --config $ini stop
        Assert ($LASTEXITCODE -eq 0) "stop"
        Assert ($sw.Elapsed.TotalSeconds -lt 20) "stopped within 20 s ($($sw.Elapsed))"
        Get-Content (Join-Path $installDir "logs\server.log")
        Get-Content (Join-Path $installDir "logs\gpuhost.log")
        Assert (Test-Path $dataDir) "the data directory exists before the purge"
        $r = Invoke-Script "uninstall.ps1" @("-Purge")
        Assert ($r.rc -eq 0) "uninstall.ps1 -Purge exit status 0"
        Assert-NothingLeft
    }
    "user" {
        $name = "tpsvc"
        $password = ConvertTo-SecureString ("Tp1!" + [Guid]::NewGuid().ToString("N")) -AsPlainText -Force
        New-LocalUser -Name $name -Password $password -PasswordNeverExpires -AccountNeverExpires | Out-Null
        try {
            $sid = (Get-LocalUser -Name $name).SID.Value
            Assert (-not (Test-LogonRight $sid)) "$name starts without the right to log on as a service"
            $cred = New-Object System.Management.Automation.PSCredential(".\$name", $password)
            # In this process: a PSCredential cannot pass through -File.
            & (Join-Path $repo "windows\install.ps1") -Checkout $ck -Port 8000 -Exe $Exe -Account User -Credential $cred `
                -RelayUrl http://127.0.0.1:5010 -RelayToken $token -NoPrompt
            Assert ($LASTEXITCODE -eq 0) "install.ps1 -Account User exit status 0"
            Assert (Test-LogonRight $sid) "$name has SeServiceLogonRight (secedit)"
            Assert ((Get-CimInstance Win32_Service -Filter "Name='$service'").StartName -eq ".\$name") "the service runs as .\$name"
            Write-Host (Wait-Health)
            foreach ($p in @($ck, (Get-VenvHome), (Join-Path $installDir "logs"), $dataDir)) {
                Assert ((Get-AclSids $p) -contains $sid) "$name granted access to $p"
            }
            Assert ((Get-AclSids $ini) -contains $sid) "$name may read gpuhost.ini"
            $r = Invoke-Script "uninstall.ps1" @("-Purge")
            Assert ($r.rc -eq 0) "uninstall.ps1 -Purge exit status 0"
            Assert (-not (Test-LogonRight $sid)) "SeServiceLogonRight revoked (secedit)"
            foreach ($p in @($ck, (Get-VenvHome))) {
                Assert (-not ((Get-AclSids $p) -contains $sid)) "$name's access to $p removed"
            }
            Assert (-not (Get-ChildItem -Recurse -Force "$ck\.venv\Scripts" | Where-Object {
                        (Get-AclSids $_.FullName) -contains $sid })) "no entry of $name left below the venv"
            Assert-NothingLeft
        } finally {
            Remove-LocalUser -Name $name -ErrorAction SilentlyContinue
        }
    }
}
# Every failure above throws; the last native command's status is not the verdict.
exit 0
